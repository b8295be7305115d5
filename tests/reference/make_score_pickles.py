"""Writes the score pickles of tests/fixtures/scores/ with real numpy, and `values.json` beside
them: for each pickle, its sample names and scores in dict order, as JSON numbers, for the Rust
reader's test (tests/scores.rs) to compare with.

Usage: python3 tests/reference/make_score_pickles.py

The pickles are made the way CTR-GCN saves `epoch1_test_score.pkl`,
`pickle.dump(dict(zip(names, scores)), f)` with `scores` a 2-D numpy array, at protocols 2, 4 and
5, in float32 and float64 (one big-endian); one pickle holds plain lists of floats. `numpy1_p4.pkl` and
`numpy1_p5.pkl` have the module paths numpy 1.x writes (`numpy.core.multiarray`,
`numpy.core.numeric`): under numpy 2 they are crafted from numpy 2's bytes by renaming the modules
and fixing the lengths that change; under numpy 1.x they are numpy's own output. With numpy
1.26.4 and 2.4.6 both ways give the same bytes. `ragged.pkl` has rows of
different lengths, which the reader must refuse.

The output depends only on the seeded generator and the pickle format, so a rerun with the same
numpy major version rewrites the same bytes.
"""

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "scores"


def write(path, data):
    """Writes atomically: a temporary file in the same directory, then a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def numpy1_module_path(data):
    """Pickle bytes of numpy 2 (protocol 4 or 5) with numpy 1's module names `numpy.core.*`."""
    if not np.__version__.startswith("2."):  # numpy 1.x wrote them already
        return data
    short_binunicode = b"\x8c"
    for module in (b"multiarray", b"numeric"):
        old, new = b"numpy._core." + module, b"numpy.core." + module
        data = data.replace(short_binunicode + bytes([len(old)]) + old, short_binunicode + bytes([len(new)]) + new)
        assert old not in data, "the module name is not a SHORT_BINUNICODE"
    # Small pickles are one frame: PROTO, FRAME <u64 length>, then the rest.
    assert data[2] == 0x95, "expected one frame"
    return data[:3] + (len(data) - 11).to_bytes(8, "little") + data[11:]


def main():
    rng = np.random.default_rng(20211120)
    names = ["test_0", "test_1", "test_2", "S001C001P001R001A060", "clip_é"]
    scores = (rng.standard_normal((len(names), 6)) * 4).astype(np.float32)

    def as_dict(rows, names=names):
        return dict(zip(names, rows))

    pickles = {
        "ctrgcn_p2_f32.pkl": pickle.dumps(as_dict(scores), protocol=2),
        "ctrgcn_p4_f32.pkl": pickle.dumps(as_dict(scores), protocol=4),
        "ctrgcn_p5_f32.pkl": pickle.dumps(as_dict(scores), protocol=5),
        "ctrgcn_p4_f64.pkl": pickle.dumps(as_dict(scores.astype(np.float64) / 3), protocol=4),
        "numpy1_p4.pkl": numpy1_module_path(pickle.dumps(as_dict(scores[:3], names[:3]), protocol=4)),
        "numpy1_p5.pkl": numpy1_module_path(pickle.dumps(as_dict(scores[:3], names[:3]), protocol=5)),
        "big_endian_p2.pkl": pickle.dumps(as_dict(scores.astype(">f4")), protocol=2),
        "lists_p4.pkl": pickle.dumps(as_dict([[float(v) for v in r] for r in scores[:, :4]]), protocol=4),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    record = {}
    for name, data in pickles.items():
        with warnings.catch_warnings():
            # numpy 2 loads numpy 1's protocol-5 `numpy.core.numeric._frombuffer` with a
            # DeprecationWarning (its `numpy.core.multiarray._reconstruct` without one).
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = pickle.loads(data)
        record[name] = {
            "names": list(loaded),
            "scores": [[float(v) for v in row] for row in loaded.values()],
        }
        write(OUT / name, data)
    write(OUT / "ragged.pkl", pickle.dumps({"a": scores[0], "b": scores[1, :5]}, protocol=4))
    # One line per score row.
    entries = []
    for name, r in record.items():
        rows = ",\n    ".join(json.dumps(row) for row in r["scores"])
        names_ = json.dumps(r["names"], ensure_ascii=False)
        entries.append(f' "{name}": {{\n  "names": {names_},\n  "scores": [\n    {rows}\n  ]\n }}')
    text = "{\n" + ",\n".join(entries) + "\n}\n"
    write(OUT / "values.json", text.encode())


if __name__ == "__main__":
    main()
