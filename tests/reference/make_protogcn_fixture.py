"""Writes tests/fixtures/protogcn_ntu60.safetensors: one ProtoGCN (protogcn.py, NTU60) training
step in PyTorch, small enough to commit although the model has 4.3M parameters.

    python tests/reference/make_protogcn_fixture.py

The same construction as tests/fixtures/blockgcn_ntu60.safetensors (make_stgcn_fixture.py, whose
docstring defines the weight formula, the sketch of a large gradient and the float32 envelope;
make_aagcn_fixture.py, make_infogcn_fixture.py and make_blockgcn_fixture.py, whose rows apply
here too): weights are a function of their state-dict key and flat index; the envelope takes
thirty-two float32 runs (ENVELOPE_RUNS); the input is the four clips of the CTR-GCN fixtures at
16 frames, x (N, 3, T, V, M), which the model permutes to pyskl's (N, M, T, V, C).

Model: protogcn.build("ntu60"), the official recognizer with keys `backbone.…` and `cls_head.…`.

The formula's table gains these rows, checked in this order before make_blockgcn_fixture.py's
table (none of them is a BN's):

    *.gcn.A (8, V, V)              0.04 + 0.02 · u                (the official N(0.04, 0.02²)'s
                                                                   mean and spread)
    *.gcn.beta (8)                 0.5 + 0.1 · u                  (MS-AAGCN's alpha row; officially 0)
    *.tcn.add_coeff (25)           0.5 + 0.1 · u                  (the same; officially 0)

`*.gcn.alpha` (officially 0) takes MS-AAGCN's existing row 0.5 + 0.1 · u. At the official zeros
of α and β the inter and intra graphs would add nothing to A, the graph the PRN reads would be 0
and conv1, conv2 would have no gradient; at add_coeff = 0 the global joint would be unused. Only
element 0 of α and β enters the model (as officially), so elements 1…7 of their gradients are
exactly 0; they are compared whole. Every other entry takes an existing row: the convs Kaiming
fan-out √(2 / O), the Linear weights (`prn.query_matrix`, `prn.memory_matrix`, `cl_fc`, and
`fc_cls`, officially N(0, 0.01²)) √(2 / I), every bias 0.05 · u, `data_bn` and every BatchNorm2d
the BN rows.

Noise, recorded and fed to the engine: one torch.Generator seeded with SEED draws the CSC class
memory, `memory` (256, 60) standard normal (officially torch.randn at construction), then the PRN
dropout's keep mask, kept where torch.rand (N, V·V, 384) ≥ 0.1 (p = 0.1; kept values are scaled
by 1 / 0.9 as nn.Dropout does). The mask is in the reference's layout: sample n, joint pair v·V + w
(the graph's row), prototype-memory channel c. The float64 reference and every float32 run use
these values.

Loss: cross-entropy + 0.2 · CSC (protogcn.losses, `BaseHead.loss`). Labels (LABEL_RULE): the
clips' labels 53, 54, 56, 57 with the first and the fourth replaced by their common float64
argmax, class 40, so that the CSC's true-positive mask holds two samples of one class (the memory
column of class 40 is updated with the mean of two features) and samples 1 and 2 (argmax 33 and
11, labels 54 and 56) are not true positives. The script asserts this and that every float32 run
takes the same argmax (the smallest top-1 margin is printed). Recorded besides what
blockgcn_ntu60 records (its topology branch aside): `memory`, the packed keep mask `prn_keep`,
the loss terms `ce` and `csc` with their envelopes, and `memory_after`, the memory after the
step with the envelope of its update (after − before).

Biases whose exact gradient is zero: those of the convs that feed a training-mode BN directly,
`gcn.pre.0`, `gcn.post` (into `gcn.bn`), `gcn.down.0`, the branch convs `tcn.branches.{0…4}.0`,
`tcn.transform.2` (into `tcn.bn`), `residual.conv` and the backbone's `post` (into `bn`). The
temporal convs `tcn.branches.{0…3}.3.conv` and the bare `tcn.branches.5` are not cancelled: their
bias reaches each joint v as b · (1 + add_coeff[v]) through the global joint, which is not
constant over V. The script asserts that exactly those listed have a float64 gradient below
1e-10 of the largest. What float32 leaves of them (the largest |g| over the largest gradient in
any float32 run, about 3e-7) is well within the fixed bar of 1e-5 that the ST-GCN check uses, so
the fixture records no `cancelled_envelope`; the script asserts that 4× it stays below 1e-5.
"""

import copy
import math

import numpy as np
import torch
from torch import nn

import make_blockgcn_fixture as bg
import make_fixture
import make_stgcn_fixture as st
import protogcn
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = make_fixture.REPO
FIXTURE = REPO / "tests" / "fixtures" / "protogcn_ntu60.safetensors"
FORMAT = "sfhead-protogcn-fixture-1"
MAX_BYTES = 1_500_000

DATASET = "ntu60"
WINDOW = 16
ENVELOPE_RUNS = bg.ENVELOPE_RUNS
# The fixed bar of the BN-cancelled gradients (tests/common/formula_fixture.rs) and the multiple
# of an envelope an engine may use (tests/common/parity.rs).
CANCELLED_BAR = 1e-5
ENVELOPE_MULTIPLE = 4
# The samples whose label becomes their (common) float64 argmax: the true positives.
TRUE_POSITIVES = (0, 3)
LABEL_RULE = "the clips' labels with the first and the fourth replaced by their common float64 argmax"
LOSS_TERMS = ("ce", "csc")
# Convs whose output goes straight into a training-mode BN, by the end of their bias's key (the
# 1×1 conv of branches 0…4 is `tcn.branches.{i}.0`): their bias is cancelled.
CANCELLED_BIASES = (
    ".gcn.pre.0.bias",
    ".gcn.post.bias",
    ".gcn.down.0.bias",
    *(f".tcn.branches.{i}.0.bias" for i in range(5)),
    ".tcn.transform.2.bias",
    ".residual.conv.bias",
    "backbone.post.bias",
)
FORMULA_CHECKS = [
    ("backbone.data_bn.weight", 74),
    ("backbone.data_bn.running_var", 17),
    ("backbone.gcn.0.gcn.A", 0),
    ("backbone.gcn.9.gcn.A", 4999),
    ("backbone.gcn.0.gcn.alpha", 0),
    ("backbone.gcn.4.gcn.beta", 0),
    ("backbone.gcn.3.tcn.add_coeff", 24),
    ("backbone.gcn.0.gcn.pre.0.weight", 287),
    ("backbone.gcn.0.gcn.pre.0.bias", 95),
    ("backbone.gcn.2.gcn.pre.1.weight", 5),
    ("backbone.gcn.7.gcn.conv1.weight", 73_727),
    ("backbone.gcn.6.gcn.conv2.bias", 191),
    ("backbone.gcn.5.gcn.post.weight", 36_863),
    ("backbone.gcn.4.gcn.down.1.running_mean", 191),
    ("backbone.gcn.2.tcn.branches.3.3.conv.weight", 767),
    ("backbone.gcn.8.tcn.branches.5.weight", 24_575),
    ("backbone.gcn.1.tcn.branches.4.1.running_var", 15),
    ("backbone.gcn.6.tcn.transform.0.weight", 191),
    ("backbone.gcn.7.residual.conv.weight", 73_727),
    ("backbone.post.weight", 147_455),
    ("backbone.bn.bias", 383),
    ("backbone.prn.query_matrix.weight", 153_599),
    ("backbone.prn.memory_matrix.weight", 0),
    ("cls_head.csc_loss.cl_fc.weight", 159_999),
    ("cls_head.csc_loss.cl_fc.bias", 255),
    ("cls_head.fc_cls.weight", 23_039),
    ("cls_head.fc_cls.bias", 59),
    ("backbone.gcn.9.gcn.A#sketch7", 4999),
]


def entry_values(key, shape, bn_prefixes):
    """The float64 values of a float state entry: ProtoGCN's rows, then make_blockgcn_fixture's."""
    n = math.prod(shape)
    leaf = key.rpartition(".")[2]
    if leaf == "A" and len(shape) == 3:
        return 0.04 + 0.02 * st.noise(key, n)
    if leaf in ("beta", "add_coeff"):
        return 0.5 + 0.1 * st.noise(key, n)
    return bg.entry_values(key, shape, bn_prefixes)


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


def cancelled_by_batch_norm(key):
    """A conv bias that a training-mode BN removes: its exact gradient is zero."""
    return key.endswith(CANCELLED_BIASES)


def noise(classes, shape):
    """The CSC memory (256, K) and the PRN keep mask (N, V·V, 384), from one seeded generator."""
    gen = torch.Generator().manual_seed(SEED)
    memory = protogcn.init_memory(classes, gen)
    keep = torch.rand(shape, generator=gen) >= protogcn.PRN_DROPOUT
    return memory, keep


def training_step(model, x, y, keep, memory):
    """Training-mode forward with the given keep mask and memory, the two-term loss and backward:
    logits, the loss terms (float), gradients, the memory after the step."""
    model.train()
    dtype = next(model.parameters()).dtype
    model.cls_head.csc_loss.avg_f = memory.to(dtype)
    logits, graph = model(torch.as_tensor(x), keep)
    terms = protogcn.losses(model, logits, graph, torch.as_tensor(y))
    terms["total"].backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return logits.detach(), {k: v.item() for k, v in terms.items()}, grads, model.cls_head.csc_loss.avg_f


def labels(clip_labels, logits):
    """LABEL_RULE, asserting what the docstring says of the true positives."""
    pred = logits.argmax(1).numpy()
    y = clip_labels.copy()
    (common,) = {int(pred[i]) for i in TRUE_POSITIVES}
    y[list(TRUE_POSITIVES)] = common
    tp = [i for i in range(len(y)) if pred[i] == y[i]]
    assert tp == list(TRUE_POSITIVES), (pred, y)
    return y


def top_margin(logits):
    """The smallest gap between the largest and the second largest logit of a sample."""
    top = logits.topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]).min().item()


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = protogcn.build(DATASET)
    set_weights(model)
    state = model.state_dict()
    for label, i in FORMULA_CHECKS:
        key = label.split("#")[0]
        assert i < state[key].numel(), (label, i)
        assert int(st.splitmix_bits(label, i + 1)[i]) == st.splitmix_scalar(label, i), label
    params = {k for k, _ in model.named_parameters()}
    names, x, clip_labels, valids = make_fixture.load_batch(WINDOW)
    n, _, _, v, _ = x.shape
    channels = protogcn.BLOCKS[-1][1]
    memory, keep = noise(model.num_class, (n, v * v, channels))

    # The labels depend on the float64 argmax; the memory the probe updates is discarded.
    probe = copy.deepcopy(model).double().train()
    with torch.no_grad():
        y = labels(clip_labels, probe(torch.as_tensor(x).double(), keep)[0])

    model64 = copy.deepcopy(model).double()
    logits, loss, grads, memory_after = training_step(model64, x.astype(np.float64), y, keep, memory.double())
    assert (logits.argmax(1).numpy() == y).tolist() == [i in TRUE_POSITIVES for i in range(n)]
    updated = (memory_after != memory.double()).any(0).nonzero().ravel().tolist()
    assert updated == [int(y[TRUE_POSITIVES[0]])], updated
    update = memory_after - memory.double()
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
        small = g.abs().max().item() < 1e-10 * largest
        assert small == cancelled_by_batch_norm(k), f"{k}: cancellation is not as expected"
    for k in params:
        if k.endswith((".alpha", ".beta")):
            assert (grads[k][1:] == 0).all() and grads[k][0] != 0, k
    sketches = {k: st.sketch(k, g) for k, g in grads.items() if not st.is_full(g)}

    envelope = {k: 0.0 for k in grads if st.is_full(grads[k])}
    sketch_envelope = {k: np.zeros(st.SKETCH_VECTORS + 2) for k in sketches}
    output_envelope = {"logits": 0.0, "memory_update": 0.0} | {term: 0.0 for term in loss}
    cancelled = [k for k in grads if cancelled_by_batch_norm(k)]
    cancelled_envelope = 0.0
    margins = [top_margin(logits)]
    for xj in envelope_inputs(x, runs=ENVELOPE_RUNS):
        logits32, loss32, grads32, after32 = training_step(copy.deepcopy(model), xj, y, keep, memory)
        assert torch.equal(logits32.argmax(1), logits.argmax(1)), "a float32 run changes the argmax"
        margins.append(top_margin(logits32))
        output_envelope["logits"] = max(output_envelope["logits"], relative_error(logits32, logits))
        for term, value in loss.items():
            output_envelope[term] = max(output_envelope[term], abs(loss32[term] - value) / abs(value))
        update32 = after32.double() - memory.double()
        output_envelope["memory_update"] = max(output_envelope["memory_update"], relative_error(update32, update))
        for k in envelope:
            envelope[k] = max(envelope[k], relative_error(grads32[k], grads[k]))
        largest32 = max(g.abs().max().item() for g in grads32.values())
        for k in cancelled:
            cancelled_envelope = max(cancelled_envelope, grads32[k].abs().max().item() / largest32)
        for k, want in sketches.items():
            errors = st.sketch_errors(st.sketch(k, grads32[k]), want)
            sketch_envelope[k] = np.maximum(sketch_envelope[k], errors)

    def scalar(value):
        return np.array(value, dtype=np.float32)

    after = {k: t.detach().clone() for k, t in model64.state_dict().items() if "running_" in k or "num_batches" in k}
    tensors = {
        "x": x,
        "y": y,
        "logits": logits.float().numpy(),
        "loss": scalar(loss["total"]),
        "memory": memory.numpy(),
        "memory_after": memory_after.float().numpy(),
        "prn_keep": np.packbits(keep.numpy(), axis=-1, bitorder="little"),
        "f32_envelope.logits": scalar(output_envelope["logits"]),
        "f32_envelope.loss": scalar(output_envelope["total"]),
        "f32_envelope.memory_update": scalar(output_envelope["memory_update"]),
        "formula.noise": np.array([st.noise(label, i + 1)[i] for label, i in FORMULA_CHECKS]),
        "formula.value": np.array([formula_value(label, i, state) for label, i in FORMULA_CHECKS], dtype=np.float32),
    }
    for term in LOSS_TERMS:
        tensors[f"loss.{term}"] = scalar(loss[term])
        tensors[f"f32_envelope.loss.{term}"] = scalar(output_envelope[term])
    for key, t in state.items():
        if t.dtype.is_floating_point:
            values = t.double().numpy()
            tensors[f"checksum.{key}"] = np.array([values.sum(), (values * values).sum()])
    for key, t in after.items():
        tensors[f"after.{key}"] = np.array(int(t), dtype=np.int64) if t.dtype == torch.int64 else t.float().numpy()
    for key, g in grads.items():
        if key in envelope:
            tensors[f"grad.{key}"] = f32_to_f24(g.float())
            tensors[f"f32_envelope.{key}"] = scalar(envelope[key])
        else:
            tensors[f"sketch.{key}"] = sketches[key]
            tensors[f"sketch_envelope.{key}"] = sketch_envelope[key].astype(np.float32)

    def kind(key):
        return "param" if key in params else "buffer"

    def shape_text(t):
        return "x".join(map(str, t.shape)) if t.dim() else "scalar"

    metadata = {
        "format": FORMAT,
        "model": "protogcn",
        "dataset": DATASET,
        "input": "x (N, 3, T, V, M); the model permutes it to (N, M, T, V, C)",
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "labels": LABEL_RULE,
        "true_positives": ",".join(map(str, TRUE_POSITIVES)),
        "csc_weight": str(protogcn.CSC_WEIGHT),
        "csc_temperature": str(protogcn.CSC_TEMPERATURE),
        "csc_momentum": str(protogcn.CSC_MOMENTUM),
        "prn_dropout": str(protogcn.PRN_DROPOUT),
        "prn_keep": "bits of the keep mask (N, V·V, C), packed along C, least significant bit first",
        "noise_seed": str(SEED),
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "envelope_seed": str(SEED),
        "batches_tracked": str(st.BATCHES_ALREADY_TRACKED),
        "full_gradient_max": str(st.FULL_GRADIENT_MAX),
        "sketch_vectors": str(st.SKETCH_VECTORS),
        "formula_checks": "\n".join(f"{label} {i}" for label, i in FORMULA_CHECKS),
        "state_dict": "\n".join(f"{k} {shape_text(t)} {kind(k)} {t.numel()}" for k, t in state.items()),
    }
    assert ENVELOPE_MULTIPLE * cancelled_envelope < CANCELLED_BAR, f"cancelled_envelope {cancelled_envelope:.3e}"
    size = write_safetensors(FIXTURE, tensors, metadata, max_bytes=MAX_BYTES)

    kept = [envelope[k] for k in envelope if k not in cancelled]
    terms = ", ".join(f"{t} {loss[t]:.6f} (envelope {output_envelope[t]:.2e})" for t in ("total",) + LOSS_TERMS)
    print(f"samples {names}, labels {y.tolist()}, x {x.shape}; {len(state)} entries, {len(params)} parameters")
    margin = min(margins)
    print(f"argmax {logits.argmax(1).tolist()}, smallest top-1 margin {margin:.3f}; memory columns {updated} updated")
    print(f"loss: {terms}")
    print(f"envelope: logits {output_envelope['logits']:.2e}, memory update {output_envelope['memory_update']:.2e}")
    print(f"dropped {(~keep).sum().item():,} of {keep.numel():,}")
    print(f"{len(cancelled)} BN-cancelled gradients, float32 leaves {cancelled_envelope:.3e} of the largest")
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
