"""Writes safetensors files that are byte-for-byte reproducible, atomically."""

import json
import os

import numpy as np
import safetensors.numpy


def write_safetensors(path, tensors, metadata, max_bytes=None):
    """Saves numpy arrays with string metadata; returns the file size.

    The library writes the metadata map in hash order, so the header is re-emitted with sorted
    metadata keys: regenerating a fixture then yields the same bytes. It also writes an array's
    memory as it lies, strides ignored, so every array is made C-contiguous first.
    """
    tensors = {k: v.copy(order="C") for k, v in tensors.items()}
    data = safetensors.numpy.save(tensors, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n, "re-emitted header grew"
    data = data[:8] + text.ljust(n, b" ") + data[8 + n :]
    loaded = safetensors.numpy.load(data)
    assert loaded.keys() == tensors.keys()
    for k, v in tensors.items():
        assert (loaded[k].dtype, loaded[k].shape) == (v.dtype, v.shape) and np.array_equal(loaded[k], v), k
    if max_bytes is not None:
        assert len(data) < max_bytes, f"{path.name} would be {len(data):,} bytes, over {max_bytes:,}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)
