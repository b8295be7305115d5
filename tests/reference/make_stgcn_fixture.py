"""Writes tests/fixtures/stgcn_ntu60.safetensors: one ST-GCN (stgcn.py, NTU60) training step in
PyTorch, small enough to commit although the model has 2.1M parameters.

    python tests/reference/make_stgcn_fixture.py

Weights are not stored: every value is a function of its state-dict key and flat index, defined
here and computed again by tests/stgcn_parity.rs. Input: the four clips of the CTR-GCN fixtures
through the test-mode transform at 16 frames. Recorded: logits, loss, BN running statistics after
the step, full gradients of the small parameters, a sketch of the gradient of each large one, and
PyTorch's own float32 envelope of all of them. tests/fixtures/README.md lists every key.

The weight formula
------------------
For a text label and a flat index i:

    h = FNV-1a-64 of the label's UTF-8 bytes: h = 0xcbf29ce484222325, then per byte
        h = (h XOR byte) · 0x100000001b3
    s = h + i + 0x9e3779b97f4a7c15
    z = (s XOR s >> 30) · 0xbf58476d1ce4e5b9
    z = (z XOR z >> 27) · 0x94d049bb133111eb
    z = z XOR z >> 31                        (splitmix64 of h + i; all arithmetic mod 2^64)
    u = (2 · ((z >> 11) · 2^-53) − 1) · √3   (float64; uniform on [−√3, √3): mean 0, variance 1)

The state entry KEY holds at its row-major index i the float64 value below, rounded once to
float32; std is computed in float64 (sqrt of a quotient of integers), then offset + std · u.
A module prefix P is a BatchNorm when P.running_mean is an entry.

    BN P.weight                    1 + 0.1 · u
    BN P.bias                      0.05 · u
    BN P.running_mean              0.1 · u
    BN P.running_var               1 + 0.3 · |u|
    BN P.num_batches_tracked       10
    *.PA (S, V, V)                 [row = column] + 0.1 · u       (the identity, perturbed)
    *.conv_d.*.weight (O, I, kh, kw)   √(2 / (O · I · kh · 3)) · u (baseline.py's branch init)
    other conv weights (O, I, kh, kw)  √(2 / (O · kh · kw)) · u    (Kaiming normal, fan_out)
    fc.weight (K, C)               √(2 / K) · u
    fc.bias                        √(1 / 768) · u                 (the std of U(±1/√256))
    other biases (conv)            0.05 · u

These are the official init scales, except that every BN γ (also `gcn1.bn`'s, 1e-6 officially,
which would mute the graph branch), every β and every conv bias is moved off its special value,
and PA off the identity, so that every path carries a gradient.

The sketch of a large gradient
------------------------------
A parameter with more than 4,096 values is recorded by ten numbers instead of its gradient g (n
values), computed in float64: s_j = Σ_i r_j[i] · g[i] for j = 0…7, where r_j[i] = +1 if the z of
the label "KEY#sketch{j}" at index i is below 2^63 and −1 otherwise; s_8 = Σ_i g[i];
s_9 = Σ_i g[i]². A quantity's error is |s_j − s_j,ref| / ‖g_ref‖₂ for j ≤ 8 (each estimates the
gradient's relative L2 error: E[(r·d)²] = ‖d‖²) and |s_9 − s_9,ref| / s_9,ref for the sum of
squares.
"""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import make_fixture
import stgcn
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, ENVELOPE_RUNS, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = make_fixture.REPO
FIXTURE = REPO / "tests" / "fixtures" / "stgcn_ntu60.safetensors"
FORMAT = "sfhead-stgcn-fixture-1"
MAX_BYTES = 1_500_000

WINDOW = 16
BATCHES_ALREADY_TRACKED = 10
FULL_GRADIENT_MAX = 4096
SKETCH_VECTORS = 8
MASK = (1 << 64) - 1
# (label, index) pairs whose formula output the fixture records, so that the Rust side checks
# its implementation of the formula before anything else: one of every kind, and sketch signs.
FORMULA_CHECKS = [
    ("data_bn.weight", 149),
    ("l1.gcn1.PA", 0),
    ("l1.gcn1.PA", 1),
    ("l7.gcn1.PA", 1874),
    ("l1.gcn1.conv_d.0.weight", 0),
    ("l3.gcn1.conv_d.2.weight", 4095),
    ("l1.gcn1.down.0.bias", 7),
    ("l5.gcn1.down.1.running_var", 127),
    ("l2.gcn1.bn.bias", 3),
    ("l4.gcn1.bn.running_mean", 63),
    ("l8.tcn1.conv.weight", 327_679),
    ("l10.tcn1.conv.bias", 255),
    ("l5.residual.conv.weight", 1000),
    ("fc.weight", 15_359),
    ("fc.bias", 59),
    ("fc.weight#sketch0", 0),
    ("l9.tcn1.conv.weight#sketch7", 123_456),
]


# ---------------------------------------------------------------------------------------------
# The formula.


def fnv1a64(label):
    h = 0xCBF29CE484222325
    for byte in label.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def splitmix_bits(label, n):
    """z of `label` at indices 0…n−1, as uint64."""
    with np.errstate(over="ignore"):
        s = np.uint64(fnv1a64(label)) + np.arange(n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (s ^ (s >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def splitmix_scalar(label, i):
    """The same for one index, in Python integers: a cross-check of the vectorised version."""
    s = (fnv1a64(label) + i + 0x9E3779B97F4A7C15) & MASK
    z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def noise(label, n):
    """u of `label` at indices 0…n−1: float64, uniform on [−√3, √3)."""
    x = (splitmix_bits(label, n) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (2.0 * x - 1.0) * math.sqrt(3.0)


def sketch_signs(key, j, n):
    return np.where(splitmix_bits(f"{key}#sketch{j}", n) < np.uint64(1 << 63), 1.0, -1.0)


def batch_norm_prefixes(keys):
    return {k[: -len(".running_mean")] for k in keys if k.endswith(".running_mean")}


def entry_values(key, shape, bn_prefixes):
    """The float64 values of a float state entry, row-major (before rounding to float32)."""
    n = math.prod(shape)
    u = noise(key, n)
    prefix, _, leaf = key.rpartition(".")
    if prefix in bn_prefixes:
        return {
            "weight": lambda: 1.0 + 0.1 * u,
            "bias": lambda: 0.05 * u,
            "running_mean": lambda: 0.1 * u,
            "running_var": lambda: 1.0 + 0.3 * np.abs(u),
        }[leaf]()
    if leaf == "PA":
        subsets, v, _ = shape
        return np.tile(np.eye(v).ravel(), subsets) + 0.1 * u
    if key == "fc.weight":
        return math.sqrt(2.0 / shape[0]) * u
    if key == "fc.bias":
        return math.sqrt(1.0 / 768) * u
    if leaf == "weight" and len(shape) == 4:
        o, i, kh, kw = shape
        fan = o * i * kh * stgcn.SUBSETS if ".conv_d." in key else o * kh * kw
        return math.sqrt(2.0 / fan) * u
    if leaf == "bias":
        return 0.05 * u
    raise ValueError(f"{key}: no rule of the weight formula applies")


def formula_value(label, i, state):
    """What FORMULA_CHECKS records: the weight of entry `label` at i, or a sketch sign."""
    if "#sketch" in label:
        key, j = label.split("#sketch")
        return sketch_signs(key, int(j), i + 1)[i]
    t = state[label]
    return np.float32(entry_values(label, tuple(t.shape), batch_norm_prefixes(state))[i])


def set_weights(model):
    """Writes the formula's values into every state entry of the model (float32)."""
    state = model.state_dict()
    bn_prefixes = batch_norm_prefixes(state)
    modules = dict(model.named_modules())
    assert bn_prefixes == {n for n, m in modules.items() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))}
    with torch.no_grad():
        for key, t in state.items():
            if key.endswith("num_batches_tracked"):
                t.fill_(BATCHES_ALREADY_TRACKED)
                continue
            prefix = key.rpartition(".")[0]
            if t.dim() == 4:
                assert isinstance(modules[prefix], nn.Conv2d), key
            values = entry_values(key, tuple(t.shape), bn_prefixes).astype(np.float32)
            t.copy_(torch.from_numpy(values.reshape(t.shape)))


# ---------------------------------------------------------------------------------------------
# The step and what is recorded of it.


def training_step(model, x, y):
    """Training-mode forward, batch-mean cross-entropy and backward: logits, loss, gradients."""
    model.train()
    logits = model(torch.as_tensor(x))
    loss = F.cross_entropy(logits, torch.as_tensor(y))
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return logits.detach(), loss.item(), grads


def sketch(key, g):
    """The ten sketch quantities of a gradient, float64."""
    flat = g.detach().double().numpy().ravel()
    dots = [sketch_signs(key, j, flat.size) @ flat for j in range(SKETCH_VECTORS)]
    return np.array(dots + [flat.sum(), flat @ flat])


def sketch_errors(got, want):
    """Per quantity: |Δs_j| / ‖g_ref‖₂ for the dots and the sum, relative for the sum of squares."""
    norm = math.sqrt(want[-1])
    errors = np.abs(got - want) / norm
    errors[-1] = abs(got[-1] - want[-1]) / want[-1]
    return errors


def cancelled_by_batch_norm(key, bn_prefixes):
    """A conv bias: each feeds a training-mode BN (conv_d through the sum of the subsets), which
    removes it, so its exact gradient is zero."""
    prefix, _, leaf = key.rpartition(".")
    return leaf == "bias" and prefix != "fc" and prefix not in bn_prefixes


def is_full(t):
    return t.numel() <= FULL_GRADIENT_MAX


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = stgcn.build("ntu60")
    set_weights(model)
    state = model.state_dict()
    for label, i in FORMULA_CHECKS:
        key = label.split("#")[0]
        assert i < state[key].numel(), (label, i)
        z = splitmix_bits(label, i + 1)[i]
        assert int(z) == splitmix_scalar(label, i), label
    params = {k for k, _ in model.named_parameters()}
    names, x, y, valids = make_fixture.load_batch(WINDOW)

    model64 = copy.deepcopy(model).double()
    logits, loss, grads = training_step(model64, x.astype(np.float64), y)
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
        if cancelled_by_batch_norm(k, batch_norm_prefixes(state)):
            assert g.abs().max().item() < 1e-10 * largest, f"{k}: a BN-cancelled gradient is not noise"
    sketches = {k: sketch(k, g) for k, g in grads.items() if not is_full(g)}

    # PyTorch's own float32 step on x and on three perturbed copies: the envelope.
    envelope = {k: 0.0 for k in grads if is_full(grads[k])}
    sketch_envelope = {k: np.zeros(SKETCH_VECTORS + 2) for k in sketches}
    output_envelope = {"logits": 0.0, "loss": 0.0}
    # How well the sketch estimates the relative L2 error it stands for, for the printout.
    estimate_ratio = []
    for xj in envelope_inputs(x):
        logits32, loss32, grads32 = training_step(copy.deepcopy(model), xj, y)
        output_envelope["logits"] = max(output_envelope["logits"], relative_error(logits32, logits))
        output_envelope["loss"] = max(output_envelope["loss"], abs(loss32 - loss) / abs(loss))
        for k in envelope:
            envelope[k] = max(envelope[k], relative_error(grads32[k], grads[k]))
        for k, want in sketches.items():
            errors = sketch_errors(sketch(k, grads32[k]), want)
            sketch_envelope[k] = np.maximum(sketch_envelope[k], errors)
            estimate = math.sqrt(np.mean(errors[:SKETCH_VECTORS] ** 2))
            estimate_ratio.append(estimate / relative_error(grads32[k], grads[k]))

    after = {k: v.detach().clone() for k, v in model64.state_dict().items() if "running_" in k or "num_batches" in k}
    tensors = {
        "x": x,
        "y": y,
        "logits": logits.float().numpy(),
        "loss": np.array(loss, dtype=np.float32),
        "f32_envelope.logits": np.array(output_envelope["logits"], dtype=np.float32),
        "f32_envelope.loss": np.array(output_envelope["loss"], dtype=np.float32),
        "formula.noise": np.array([noise(label, i + 1)[i] for label, i in FORMULA_CHECKS]),
        "formula.value": np.array([formula_value(label, i, state) for label, i in FORMULA_CHECKS], dtype=np.float32),
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
        "format": FORMAT,
        "model": "stgcn",
        "dataset": "ntu60",
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "envelope_seed": str(SEED),
        "batches_tracked": str(BATCHES_ALREADY_TRACKED),
        "full_gradient_max": str(FULL_GRADIENT_MAX),
        "sketch_vectors": str(SKETCH_VECTORS),
        "formula_checks": "\n".join(f"{label} {i}" for label, i in FORMULA_CHECKS),
        "state_dict": "\n".join(f"{k} {shape_text(t)} {kind(k)} {t.numel()}" for k, t in state.items()),
    }
    size = write_safetensors(FIXTURE, tensors, metadata, max_bytes=MAX_BYTES)

    full = [k for k in grads if k in envelope]
    print(f"samples {names}, labels {y.tolist()}, valid frames {valids}, x {x.shape}")
    print(f"loss {loss:.6f}, logits in [{logits.min():.3f}, {logits.max():.3f}]")
    print(f"envelope: logits {output_envelope['logits']:.2e}, loss {output_envelope['loss']:.2e}")
    conv_biases = [k for k in full if cancelled_by_batch_norm(k, batch_norm_prefixes(state))]
    kept = [envelope[k] for k in full if k not in conv_biases]
    print(
        f"{len(full)} full gradients ({sum(grads[k].numel() for k in full):,} values; "
        f"{len(conv_biases)} BN-cancelled conv biases), envelope of the other {len(kept)}: "
        f"median {np.median(kept):.2e}, max {np.max(kept):.2e}"
    )
    dots = np.concatenate([e[: SKETCH_VECTORS + 1] for e in sketch_envelope.values()])
    squares = np.array([e[-1] for e in sketch_envelope.values()])
    print(
        f"{len(sketches)} sketched gradients ({sum(grads[k].numel() for k in sketches):,} values): "
        f"envelope of the dots and sums median {np.median(dots):.2e}, max {dots.max():.2e}; "
        f"of the sums of squares median {np.median(squares):.2e}, max {squares.max():.2e}"
    )
    print(
        "sketch estimate / true relative L2 error of the float32 runs: "
        f"median {np.median(estimate_ratio):.2f}, range [{min(estimate_ratio):.2f}, {max(estimate_ratio):.2f}]"
    )
    print(f"wrote {FIXTURE.relative_to(REPO)} ({size:,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
