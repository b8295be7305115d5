"""Writes tests/fixtures/hdgcn_ntu60.safetensors: one HD-GCN (hdgcn.py, NTU60, CoM 21) training
step in PyTorch, small enough to commit although the model has 1.66M parameters.

    python tests/reference/make_hdgcn_fixture.py

The same construction as tests/fixtures/blockgcn_ntu60.safetensors (make_stgcn_fixture.py, whose
docstring defines the weight formula, the sketch of a large gradient and the float32 envelope;
make_aagcn_fixture.py and make_infogcn_fixture.py, whose rows apply here too): weights are a
function of their state-dict key and flat index; the envelope takes thirty-two float32 runs
(ENVELOPE_RUNS, as BlockGCN's); the input is the four clips of the CTR-GCN fixtures at 16 frames.

Model: hdgcn.build("ntu60", com=21). Its state dict names every tensor of the last level of each
graph unit twice (`gcn1.conv.5.*` and the official alias `gcn1.conv_d.*`); the fixture's
`state_dict` lists each tensor once, under its first name, and the metadata `aliases` lists the
270 second names ("alias key" per line), which a checkpoint of the official model also holds.

The formula's table gains one row, checked before make_blockgcn_fixture.py's table:

    *.PA (L, S, V, V)              [row = column] + 0.1 · u       (the identity per level and subset,
                                                                   perturbed; row = (i / V) mod V)

Every other entry takes an existing row: the 1×1 convs of `conv_down`, `conv.{l}.{s}`, the
EdgeConvs (`conv.{l}.3.conv.0`, `aha.edge_conv.conv.0`, no bias), `aha.conv_down`, `down` and
the MS-TCN and `residual` convs Kaiming fan-out √(2 / (O · kh · kw)) · u; `aha.aggregate`, a
Conv1d, the Conv1d row √(2 / (I · k + O · k)) · u; every bias but `fc`'s, also the MS-TCN's
separate `bias` (1, C, 1, 1), the conv biases' 0.05 · u; `data_bn` and every BatchNorm2d the BN
rows, also `gcn1.bn`, whose official γ = 1e-6 would mute the graph unit; `fc` its own rows.
Officially PA starts at the hierarchical graph A (`hdgcn.graph`); the fixture records A for
CoM 21 as `graph`, and the engine's initial PA must equal it bit for bit.

Loss: mean cross-entropy with the clips' labels.

Layout. With one tensor per record, as the other fixtures have, the 2,747 state entries would
make 6,634 tensors and a header of 800 KB; here each kind of record is one tensor, its entries
concatenated in state-dict order (tests/fixtures/README.md lists the keys). Gradients of at most
1,024 values (FULL_GRADIENT_MAX) are recorded whole, larger ones sketched.

The kNN picks. Each graph unit's six EdgeConvs pick the 5 nearest of 25 joints, and each AHA the
3 nearest of 6 levels, by float comparisons of squared distances: a pair within rounding of a
tie may be picked differently in float32 than in float64, which moves the gradients far more
than rounding does. The script compares every float32 run's picks (as sets) with the float64
step's and records in the metadata `knn_flips` how many of the 8 · (10 · 6 · 25 + 9 · 6) neighbour
sets differed in how many of the runs, and `knn_margin` the smallest gap in float64 between a
node's k-th and (k + 1)-th candidate, relative to the k-th's distance. A differing pick moves
that node's output by far more than rounding, so the blocks after it pick differently in turn.
On these clips most float32 runs flip somewhere (tests/fixtures/README.md gives the counts), so
the envelope, which covers the runs with flips as well as those without, is wide; a wrong unit
still lands far outside it. The BNs after a differing pick see other batch statistics too, so
besides the gradients' the fixture records the envelope of every running statistic after the
step (`f32_envelope.after.running`), which the test uses where it is above the usual 1e-4 bar.

Biases whose exact gradient is zero: every conv bias (`conv_down.{l}.0`, `conv.{l}.{s}.0`,
`aha.conv_down.0`, `down.0`, the MS-TCN branches' 1×1 convs and separate `bias`,
`residual.conv`: each feeds a training-mode BN), and in block 1, which sums the levels instead of
weighting them, the BN biases `l1.gcn1.conv.{l}.{s}.1.bias` of the aggregation branches (summed
over the levels straight into `gcn1.bn`); `aha.aggregate.bias` reaches the sigmoid and is
compared. The script asserts that exactly these have a float64 gradient below 1e-10 of the
largest. What float32 leaves of them (the largest |g| of any over the largest gradient, in any
run) is printed: about 4e-7, below the fixed 1e-5 bar of the ST-GCN check, so unlike InfoGCN's
and BlockGCN's fixtures this one records no `cancelled_envelope` and that bar applies.
"""

import copy
import math

import numpy as np
import torch
from torch import nn

import hdgcn
import make_blockgcn_fixture as bg
import make_fixture
import make_stgcn_fixture as st
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = make_fixture.REPO
FIXTURE = REPO / "tests" / "fixtures" / "hdgcn_ntu60.safetensors"
FORMAT = "sfhead-hdgcn-fixture-1"
MAX_BYTES = 1_000_000

DATASET = "ntu60"
COM = 21
WINDOW = 16
ENVELOPE_RUNS = bg.ENVELOPE_RUNS
# A quarter of the other fixtures' 4,096: HD-GCN has 1,535 parameter tensors, 1,451 of them at most
# 4,096 values (584k values, 1.75 MB as float24); at most 1,024 are 1,332 tensors and 174k values.
FULL_GRADIENT_MAX = 1024
FORMULA_CHECKS = [
    ("l1.gcn1.PA", 0),
    ("l1.gcn1.PA", 1),
    ("l10.gcn1.PA", 11_249),
    ("data_bn.weight", 149),
    ("data_bn.running_var", 17),
    ("l1.gcn1.conv_down.0.0.weight", 47),
    ("l1.gcn1.conv_down.5.0.bias", 15),
    ("l2.gcn1.conv_down.3.1.running_var", 15),
    ("l3.gcn1.conv.2.1.0.weight", 255),
    ("l4.gcn1.conv.4.0.1.weight", 7),
    ("l6.gcn1.conv.5.3.conv.0.weight", 2047),
    ("l7.gcn1.conv.0.3.conv.1.bias", 31),
    ("l2.gcn1.aha.conv_down.0.weight", 1023),
    ("l9.gcn1.aha.edge_conv.conv.0.weight", 8191),
    ("l10.gcn1.aha.aggregate.weight", 16_383),
    ("l5.gcn1.aha.aggregate.bias", 127),
    ("l2.gcn1.bn.weight", 5),
    ("l8.gcn1.down.0.weight", 32_767),
    ("l3.tcn1.branches.0.3.bias", 15),
    ("l3.tcn1.branches.0.3.conv.weight", 1279),
    ("l8.tcn1.branches.2.4.running_mean", 63),
    ("l5.residual.conv.weight", 8191),
    ("l8.residual.bn.weight", 255),
    ("fc.weight", 15_359),
    ("fc.bias", 59),
    ("l9.tcn1.branches.1.3.conv.weight#sketch7", 20_479),
]


def entry_values(key, shape, bn_prefixes):
    """The float64 values of a float state entry: HD-GCN's row, then make_blockgcn_fixture's."""
    n = math.prod(shape)
    if key.rpartition(".")[2] == "PA" and len(shape) == 4:
        _, _, v, w = shape
        assert v == w, key
        return np.tile(np.eye(v).ravel(), n // (v * v)) + 0.1 * st.noise(key, n)
    return bg.entry_values(key, shape, bn_prefixes)


def formula_value(label, i, state):
    if "#sketch" in label:
        key, j = label.split("#sketch")
        return st.sketch_signs(key, int(j), i + 1)[i]
    t = state[label]
    return np.float32(entry_values(label, tuple(t.shape), st.batch_norm_prefixes(state))[i])


def canonical_state(model):
    """The state dict with each tensor once, under its first name."""
    aliases = {alias for alias, _ in hdgcn.aliases(model)}
    return {k: v for k, v in model.state_dict().items() if k not in aliases}


def set_weights(model):
    state = canonical_state(model)
    bn_prefixes = st.batch_norm_prefixes(state)
    modules = dict(model.named_modules(remove_duplicate=False))
    bns = {n for n, m in modules.items() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))}
    assert bn_prefixes == {n for n in bns if ".conv_d." not in n}
    with torch.no_grad():
        for key, t in state.items():
            if key.endswith("num_batches_tracked"):
                t.fill_(st.BATCHES_ALREADY_TRACKED)
                continue
            values = entry_values(key, tuple(t.shape), bn_prefixes).astype(np.float32)
            t.copy_(torch.from_numpy(values.reshape(t.shape)))


def cancelled_by_batch_norm(key, bn_prefixes):
    """A parameter that a training-mode BN removes: its exact gradient is zero."""
    prefix, _, leaf = key.rpartition(".")
    if leaf != "bias" or prefix == "fc" or prefix.endswith(".aha.aggregate"):
        return False
    if prefix not in bn_prefixes:
        return True
    # Block 1 sums its levels: the aggregation branches' BN shifts go straight into gcn1.bn.
    parts = prefix.split(".")
    return parts[:3] == ["l1", "gcn1", "conv"] and parts[4] != "3"


def edge_convs(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, hdgcn.EdgeConv)]


def picks(model):
    """Every EdgeConv's last neighbour picks as sorted index sets: name → (N, nodes, k)."""
    return {name: m.last_idx.sort(dim=-1)[0] for name, m in edge_convs(model)}


def knn_margin(model, x):
    """The smallest relative gap between a node's k-th and (k + 1)-th candidate in the forward of
    `model` on x (float64)."""
    margins = []

    def hook(module, inputs, _):
        h = inputs[0]
        h = h.mean(dim=-2) if h.dim() == 4 else h
        d = (h.unsqueeze(-1) - h.unsqueeze(-2)).square().sum(1)  # (N, V, V) squared distances
        s = d.sort(dim=-1)[0]
        k = module.k
        margins.append(((s[..., k] - s[..., k - 1]) / s[..., k - 1].clamp_min(1e-300)).min().item())

    handles = [m.register_forward_hook(hook) for _, m in edge_convs(model)]
    with torch.no_grad():
        model.train()
        model(torch.as_tensor(x))
    for h in handles:
        h.remove()
    return min(margins)


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = hdgcn.build(DATASET, COM)
    set_weights(model)
    state = canonical_state(model)
    aliases = hdgcn.aliases(model)
    bn_prefixes = st.batch_norm_prefixes(state)
    for label, i in FORMULA_CHECKS:
        key = label.split("#")[0]
        assert i < state[key].numel(), (label, i)
        assert int(st.splitmix_bits(label, i + 1)[i]) == st.splitmix_scalar(label, i), label
    params = {k for k, _ in model.named_parameters()}
    assert params <= state.keys()
    names, x, y, valids = make_fixture.load_batch(WINDOW)

    model64 = copy.deepcopy(model).double()
    # The margin is measured on a copy: its forward updates BN running statistics.
    margin = knn_margin(copy.deepcopy(model64), x.astype(np.float64))
    logits, loss, grads = st.training_step(model64, x.astype(np.float64), y)
    picks64 = picks(model64)
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
        small = g.abs().max().item() < 1e-10 * largest
        assert small == cancelled_by_batch_norm(k, bn_prefixes), f"{k}: cancellation is not as expected"
    sketches = {k: st.sketch(k, g) for k, g in grads.items() if g.numel() > FULL_GRADIENT_MAX}

    envelope = {k: 0.0 for k in grads if grads[k].numel() <= FULL_GRADIENT_MAX}
    sketch_envelope = {k: np.zeros(st.SKETCH_VECTORS + 2) for k in sketches}
    output_envelope = {"logits": 0.0, "loss": 0.0}
    after64 = canonical_state(model64)
    running = [k for k in after64 if "running_" in k]
    running_envelope = dict.fromkeys(running, 0.0)
    cancelled = [k for k in grads if cancelled_by_batch_norm(k, bn_prefixes)]
    cancelled_envelope = 0.0
    neighbour_sets = sum(p.shape[0] * p.shape[1] for p in picks64.values())
    flips = []  # per run: neighbour sets that differ from float64's
    for xj in envelope_inputs(x, runs=ENVELOPE_RUNS):
        model32 = copy.deepcopy(model)
        logits32, loss32, grads32 = st.training_step(model32, xj, y)
        flips.append(sum(int((p != picks64[n]).any(-1).sum()) for n, p in picks(model32).items()))
        output_envelope["logits"] = max(output_envelope["logits"], relative_error(logits32, logits))
        after32 = model32.state_dict()
        for k in running:
            running_envelope[k] = max(running_envelope[k], relative_error(after32[k], after64[k]))
        output_envelope["loss"] = max(output_envelope["loss"], abs(loss32 - loss) / loss)
        for k in envelope:
            envelope[k] = max(envelope[k], relative_error(grads32[k], grads[k]))
        largest32 = max(g.abs().max().item() for g in grads32.values())
        for k in cancelled:
            cancelled_envelope = max(cancelled_envelope, grads32[k].abs().max().item() / largest32)
        for k, want in sketches.items():
            errors = st.sketch_errors(st.sketch(k, grads32[k]), want)
            sketch_envelope[k] = np.maximum(sketch_envelope[k], errors)

    # Within the fixed bar the check applies without a recorded envelope.
    assert cancelled_envelope < 1e-5, f"cancelled_envelope {cancelled_envelope:.2e}: record it as the metadata"

    def scalar(v):
        return np.array(v, dtype=np.float32)

    after = {k: v.detach().clone() for k, v in after64.items() if "running_" in k or "num_batches" in k}
    counters = [k for k in after if k.endswith("num_batches_tracked")]
    full = [k for k in grads if k in envelope]
    sketched = [k for k in grads if k in sketches]
    tensors = {
        "x": x,
        "y": y,
        "logits": logits.float().numpy(),
        "loss": scalar(loss),
        "graph": hdgcn.graph(DATASET, COM).astype(np.float32),
        "f32_envelope.logits": scalar(output_envelope["logits"]),
        "f32_envelope.loss": scalar(output_envelope["loss"]),
        "formula.noise": np.array([st.noise(label, i + 1)[i] for label, i in FORMULA_CHECKS]),
        "formula.value": np.array([formula_value(label, i, state) for label, i in FORMULA_CHECKS], dtype=np.float32),
        "checksums": np.array(
            [
                [t.double().sum().item(), t.double().square().sum().item()]
                for t in state.values()
                if t.is_floating_point()
            ]
        ),
        "after.running": np.concatenate([after[k].float().numpy().ravel() for k in running]),
        "f32_envelope.after.running": np.array([running_envelope[k] for k in running], dtype=np.float32),
        "after.num_batches_tracked": np.array([int(after[k]) for k in counters], dtype=np.int64),
        "grads": np.concatenate([f32_to_f24(grads[k].float().reshape(-1)) for k in full]),
        "f32_envelope.grads": np.array([envelope[k] for k in full], dtype=np.float32),
        "sketches": np.stack([sketches[k] for k in sketched]),
        "sketch_envelopes": np.stack([sketch_envelope[k] for k in sketched]).astype(np.float32),
    }

    def kind(key):
        return "param" if key in params else "buffer"

    def shape_text(t):
        return "x".join(map(str, t.shape)) if t.dim() else "scalar"

    flipped_runs = sum(1 for f in flips if f)
    metadata = {
        "format": FORMAT,
        "model": "hdgcn",
        "dataset": DATASET,
        "com": str(COM),
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "envelope_seed": str(SEED),
        "batches_tracked": str(st.BATCHES_ALREADY_TRACKED),
        "knn_flips": (
            f"{flipped_runs} of {ENVELOPE_RUNS} float32 runs pick other neighbours than float64 in "
            f"some of the {neighbour_sets} neighbour sets (at most {max(flips)} in one run)"
        ),
        "knn_margin": f"{margin:.3e}",
        "full_gradient_max": str(FULL_GRADIENT_MAX),
        "sketch_vectors": str(st.SKETCH_VECTORS),
        "formula_checks": "\n".join(f"{label} {i}" for label, i in FORMULA_CHECKS),
        "aliases": "\n".join(f"{alias} {key}" for alias, key in aliases),
        "state_dict": "\n".join(f"{k} {shape_text(t)} {kind(k)} {t.numel()}" for k, t in state.items()),
    }
    size = write_safetensors(FIXTURE, tensors, metadata, max_bytes=MAX_BYTES)

    kept = [envelope[k] for k in envelope if k not in cancelled]
    print(
        f"samples {names}, labels {y.tolist()}, x {x.shape}; {len(state)} entries "
        f"(+{len(aliases)} aliases), {len(params)} parameters"
    )
    print(f"loss {loss:.6f}; envelope: logits {output_envelope['logits']:.2e}, loss {output_envelope['loss']:.2e}")
    print(f"kNN: float32 flips per run {flips} of {neighbour_sets} sets; smallest float64 margin {margin:.3e}")
    moved = [running_envelope[k] for k in running]
    print(
        f"running statistics: envelope median {np.median(moved):.2e}, max {max(moved):.2e}; "
        f"{sum(e > 2.5e-5 for e in moved)} of {len(moved)} above 2.5e-5"
    )
    print(f"{len(cancelled)} BN-cancelled gradients, cancelled_envelope {cancelled_envelope:.3e}")
    print(
        f"{len(envelope)} full gradients ({sum(grads[k].numel() for k in envelope):,} values), envelope of the "
        f"{len(kept)} not BN-cancelled: median {np.median(kept):.2e}, max {np.max(kept):.2e}"
    )
    dots = np.concatenate([e[: st.SKETCH_VECTORS + 1] for e in sketch_envelope.values()])
    squares = np.array([e[-1] for e in sketch_envelope.values()])
    print(
        f"{len(sketches)} sketched gradients ({sum(grads[k].numel() for k in sketches):,} values): "
        f"envelope of the dots and sums median {np.median(dots):.2e}, max {dots.max():.2e}; "
        f"of the sums of squares median {np.median(squares):.2e}, max {squares.max():.2e}"
    )
    print(f"wrote {FIXTURE.relative_to(REPO)} ({size:,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
