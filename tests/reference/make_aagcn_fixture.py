"""Writes tests/fixtures/aagcn_ntu60.safetensors: one MS-AAGCN (aagcn.py, NTU60) training step in
PyTorch, small enough to commit although the model has 3.8M parameters.

    python tests/reference/make_aagcn_fixture.py           # MS-AAGCN
    python tests/reference/make_aagcn_fixture.py --plain   # plain 2s-AGCN (agcn.py), to
                                                           # tests/fixtures/aagcn_ntu60_plain.safetensors

The same construction as tests/fixtures/stgcn_ntu60.safetensors (make_stgcn_fixture.py, whose
docstring defines the weight formula, the sketch of a large gradient and the float32 envelope):
weights are a function of their state-dict key and flat index, computed again by
tests/aagcn_parity.rs; the envelope takes sixteen float32 runs (ENVELOPE_RUNS); the input is the four clips of the CTR-GCN fixtures at 16 frames. The
formula's table gains three rows for the entries ST-GCN does not have:

    *.alpha (1)                    0.5 + 0.1 · u
    Conv1d weights (O, I, k)       √(2 / (I · k + O · k)) · u     (xavier_normal's spread)
    Linear weights other than fc (O, I)   √(2 / I) · u            (kaiming_normal, fan in)

PA keeps ST-GCN's rule (the identity, perturbed). Officially α, conv_ta and fc2c start at zero,
which would leave the similarity branch and two gates without a gradient; here every path
carries one. Of the biases, those of conv_d, down.0, tcn1.conv and residual.conv feed a
training-mode BN, so their exact gradient is zero; conv_a's and conv_b's pass through the Gram
matrix and tanh, and the attention layers' through their gates, so theirs are real.

With --plain the model is agcn.py's (aagcn.build(dataset, plain=True)) and PA gets the
perturbed identity as well (officially 1e-6, added to the fixed subsets). There the softmax over
the rows u of θᵀφ removes conv_a's bias (it adds a term independent of u), so conv_a's biases
join the cancelled ones; conv_b's remain real.
"""

import sys

import copy
import math

import numpy as np
import torch
from torch import nn

import aagcn
import make_fixture
import make_stgcn_fixture as st
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = make_fixture.REPO
FIXTURES = {
    False: REPO / "tests" / "fixtures" / "aagcn_ntu60.safetensors",
    True: REPO / "tests" / "fixtures" / "aagcn_ntu60_plain.safetensors",
}
FORMATS = {False: "sfhead-aagcn-fixture-1", True: "sfhead-agcn-fixture-1"}
MAX_BYTES = 1_000_000

WINDOW = 16
# Float32 runs of the envelope, four times the other fixtures' four: this model's float32 errors
# are bimodal (a run either keeps every float64 ReLU decision, about 1e-4 from the reference, or
# flips a few, about 3e-3), so four runs can all fall in the first mode and understate the spread.
ENVELOPE_RUNS = 16
FORMULA_CHECKS = [
    ("data_bn.weight", 149),
    ("l1.gcn1.PA", 0),
    ("l7.gcn1.PA", 1874),
    ("l1.gcn1.alpha", 0),
    ("l10.gcn1.alpha", 0),
    ("l1.gcn1.conv_d.0.weight", 0),
    ("l3.gcn1.conv_a.2.weight", 1023),
    ("l6.gcn1.conv_b.0.bias", 31),
    ("l2.gcn1.conv_ta.weight", 575),
    ("l9.gcn1.conv_sa.weight", 6399),
    ("l4.gcn1.conv_sa.bias", 0),
    ("l5.gcn1.fc1c.weight", 8191),
    ("l8.gcn1.fc2c.weight", 100),
    ("l8.gcn1.fc2c.bias", 255),
    ("l5.gcn1.down.1.running_var", 127),
    ("l8.tcn1.conv.weight", 589_823),
    ("l5.residual.conv.weight", 1000),
    ("fc.weight", 15_359),
    ("fc.bias", 59),
    ("l9.tcn1.conv.weight#sketch7", 123_456),
]


def entry_values(key, shape, bn_prefixes):
    """The float64 values of a float state entry: make_stgcn_fixture's table plus MS-AAGCN's rows."""
    n = math.prod(shape)
    leaf = key.rpartition(".")[2]
    if key.rpartition(".")[0] not in bn_prefixes:
        if leaf == "alpha":
            return 0.5 + 0.1 * st.noise(key, n)
        if leaf == "weight" and len(shape) == 3:
            o, i, k = shape
            return math.sqrt(2.0 / (i * k + o * k)) * st.noise(key, n)
        if leaf == "weight" and len(shape) == 2 and key != "fc.weight":
            return math.sqrt(2.0 / shape[1]) * st.noise(key, n)
    return st.entry_values(key, shape, bn_prefixes)


def formula_value(label, i, state):
    if "#sketch" in label:
        key, j = label.split("#sketch")
        return st.sketch_signs(key, int(j), i + 1)[i]
    t = state[label]
    return np.float32(entry_values(label, tuple(t.shape), st.batch_norm_prefixes(state))[i])


def set_weights(model):
    state = model.state_dict()
    bn_prefixes = st.batch_norm_prefixes(state)
    modules = dict(model.named_modules())
    assert bn_prefixes == {n for n, m in modules.items() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))}
    with torch.no_grad():
        for key, t in state.items():
            if key.endswith("num_batches_tracked"):
                t.fill_(st.BATCHES_ALREADY_TRACKED)
                continue
            values = entry_values(key, tuple(t.shape), bn_prefixes).astype(np.float32)
            t.copy_(torch.from_numpy(values.reshape(t.shape)))


CANCELLED_BIAS_OWNERS = (".conv_d.", ".down.0.", ".tcn1.conv.", ".residual.conv.")


def cancelled_by_batch_norm(key, plain=False):
    """A conv bias that feeds a training-mode BN, or in plain 2s-AGCN conv_a's under the
    softmax: its exact gradient is zero."""
    prefix, _, leaf = key.rpartition(".")
    owners = CANCELLED_BIAS_OWNERS + ((".conv_a.",) if plain else ())
    return leaf == "bias" and any(owner in prefix + "." for owner in owners)


def main(plain):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = aagcn.build("ntu60", plain)
    set_weights(model)
    state = model.state_dict()
    # Plain 2s-AGCN has no alpha and no attention layers.
    checks = [(label, i) for label, i in FORMULA_CHECKS if label.split("#")[0] in state]
    for label, i in checks:
        key = label.split("#")[0]
        assert i < state[key].numel(), (label, i)
        assert int(st.splitmix_bits(label, i + 1)[i]) == st.splitmix_scalar(label, i), label
    params = {k for k, _ in model.named_parameters()}
    names, x, y, valids = make_fixture.load_batch(WINDOW)

    model64 = copy.deepcopy(model).double()
    logits, loss, grads = st.training_step(model64, x.astype(np.float64), y)
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
        small = g.abs().max().item() < 1e-10 * largest
        assert small == cancelled_by_batch_norm(k, plain), f"{k}: cancellation is not as expected"
    sketches = {k: st.sketch(k, g) for k, g in grads.items() if not st.is_full(g)}

    envelope = {k: 0.0 for k in grads if st.is_full(grads[k])}
    sketch_envelope = {k: np.zeros(st.SKETCH_VECTORS + 2) for k in sketches}
    output_envelope = {"logits": 0.0, "loss": 0.0}
    for xj in envelope_inputs(x, runs=ENVELOPE_RUNS):
        logits32, loss32, grads32 = st.training_step(copy.deepcopy(model), xj, y)
        output_envelope["logits"] = max(output_envelope["logits"], relative_error(logits32, logits))
        output_envelope["loss"] = max(output_envelope["loss"], abs(loss32 - loss) / abs(loss))
        for k in envelope:
            envelope[k] = max(envelope[k], relative_error(grads32[k], grads[k]))
        for k, want in sketches.items():
            errors = st.sketch_errors(st.sketch(k, grads32[k]), want)
            sketch_envelope[k] = np.maximum(sketch_envelope[k], errors)

    after = {k: v.detach().clone() for k, v in model64.state_dict().items() if "running_" in k or "num_batches" in k}
    tensors = {
        "x": x,
        "y": y,
        "logits": logits.float().numpy(),
        "loss": np.array(loss, dtype=np.float32),
        "f32_envelope.logits": np.array(output_envelope["logits"], dtype=np.float32),
        "f32_envelope.loss": np.array(output_envelope["loss"], dtype=np.float32),
        "formula.noise": np.array([st.noise(label, i + 1)[i] for label, i in checks]),
        "formula.value": np.array([formula_value(label, i, state) for label, i in checks], dtype=np.float32),
    }
    for key, t in state.items():
        if t.dtype.is_floating_point:
            v = t.double().numpy()
            tensors[f"checksum.{key}"] = np.array([v.sum(), (v * v).sum()])
    for key, t in after.items():
        tensors[f"after.{key}"] = np.array(int(t), dtype=np.int64) if t.dtype == torch.int64 else t.float().numpy()
    for key, g in grads.items():
        if key in envelope:
            tensors[f"grad.{key}"] = f32_to_f24(g.float())
            tensors[f"f32_envelope.{key}"] = np.array(envelope[key], dtype=np.float32)
        else:
            tensors[f"sketch.{key}"] = sketches[key]
            tensors[f"sketch_envelope.{key}"] = sketch_envelope[key].astype(np.float32)

    def kind(key):
        return "param" if key in params else "buffer"

    def shape_text(t):
        return "x".join(map(str, t.shape)) if t.dim() else "scalar"

    metadata = {
        "format": FORMATS[plain],
        "model": "agcn" if plain else "aagcn",
        "dataset": "ntu60",
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "envelope_seed": str(SEED),
        "batches_tracked": str(st.BATCHES_ALREADY_TRACKED),
        "full_gradient_max": str(st.FULL_GRADIENT_MAX),
        "sketch_vectors": str(st.SKETCH_VECTORS),
        "formula_checks": "\n".join(f"{label} {i}" for label, i in checks),
        "state_dict": "\n".join(f"{k} {shape_text(t)} {kind(k)} {t.numel()}" for k, t in state.items()),
    }
    size = write_safetensors(FIXTURES[plain], tensors, metadata, max_bytes=MAX_BYTES)

    full = [k for k in envelope if not cancelled_by_batch_norm(k, plain)]
    print(f"samples {names}, labels {y.tolist()}, x {x.shape}; loss {loss:.6f}")
    print(f"envelope: logits {output_envelope['logits']:.2e}, loss {output_envelope['loss']:.2e}")
    kept = [envelope[k] for k in full]
    print(f"{len(envelope)} full gradients, envelope of the {len(kept)} not BN-cancelled: median {np.median(kept):.2e}, max {np.max(kept):.2e}")
    dots = np.concatenate([e for e in sketch_envelope.values()])
    print(f"{len(sketches)} sketched gradients: envelope median {np.median(dots):.2e}, max {dots.max():.2e}")
    print(f"wrote {FIXTURES[plain].relative_to(REPO)} ({size:,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main(plain="--plain" in sys.argv[1:])
