"""Writes tests/fixtures/blockgcn_ntu60.safetensors: one BlockGCN (blockgcn.py, NTU60) training
step in PyTorch, small enough to commit although the model has 1.37M parameters.

    python tests/reference/make_blockgcn_fixture.py

The same construction as tests/fixtures/infogcn_ntu60.safetensors (make_stgcn_fixture.py, whose
docstring defines the weight formula, the sketch of a large gradient and the float32 envelope;
make_aagcn_fixture.py and make_infogcn_fixture.py, whose rows apply here too): weights are a
function of their state-dict key and flat index; the envelope takes thirty-two float32 runs
(ENVELOPE_RUNS); the input is the four clips of the CTR-GCN fixtures at 16 frames.

Model: blockgcn.build("ntu60", topology="official"). Its forward takes the raw joints `x` and
applies the NTU feeder's spine-relative transform itself (every joint minus joint 21, index 20,
per frame; joint 21 keeps its trajectory) for the embedding; the topology branch reads `x`. The
topology features follow TopoTrans's `repeat(2, 1)`: row n·M + m of a block input gets sample
((n·M + m) mod N)'s.

The formula's table gains these rows, checked in this order before make_infogcn_fixture.py's
table (none of them is a BN's):

    *.gcn1.fc1 (S, H, V, V)        [row = column] + 0.1 · u       (the identity per subset and group,
                                                                   perturbed; row = (i / V) mod V)
    *.gcn1.rpe (S, H, hops)        0.1 + 0.05 · u                 (officially 0)
    topo.pl.centres (64, 2)        0.5 + √(1 / 12) · u            (the official U(0, 1)'s mean and spread)
    topo.pl.sharpness (64, 2)      2 + 0.2 · u                    (officially 3)

Every other entry takes an existing row: `pos_embedding` u; `to_joint_embedding.weight` and
`t{i}.mlp.weight` the Linear row √(2 / I) · u; the grouped `fc2.{s}.weight` (O, I/8, 1, 1) and
the other conv weights Kaiming fan-out √(2 / O); every bias but `fc`'s the conv biases' 0.05 · u;
`data_bn`, every BatchNorm2d and the BatchNorm1d `t{i}.bn` the BN rows (officially `gcn1.bn`'s
γ is 1e-6, which would mute the graph unit); `fc` its own rows.
The official rpe = 0 makes the column-normalised P / (‖P‖ + 1e-4) zero with a derivative of 1e4
and no gradient direction; at 0.1 + 0.05 · u (values 0.013…0.19, columns of norm about 0.5)
P's normalisation is well conditioned. At the official sharpness 3 a bar far from a centre
contributes exp(−18); at 2 + 0.2 · u (s² ≤ 5.5) the exponents lie in 0.002…8.7 for these deaths
(0.033…1.18), so the smallest term is 1.6e-4 and the features are 0.087…20.8. Every feature is
a positive sum over 24 bars, so they share a large common part: across the batch a `t{i}.mlp`
output channel varies by as little as 3e-3 of its size, and BN1d multiplies its float32 error
by about 300. The envelope measures what that leaves. Officially make_tensor rounds the deaths
to float32; doing so in the float64 step moves its gradients by up to 1.9e-3 relative
(`l7.gcn1.bn.bias`, envelope 6.6e-3), so an engine may compute the deaths in either precision.

Loss: mean cross-entropy with the clips' labels. Recorded besides what infogcn_ntu60 records
(the loss terms, ε and the prior aside): `deaths`, the 24 finite bars of each sample's 0-dim
persistence (ascending, float64 rounded to float32), `topo_features`, the StructureElementLayer's
(N, 64) output, and `hops`, the (V, V) hop distances of BlockGCN's skeleton. The infinite bar is
not a feature: VietorisRipsComplex drops it by default (keep_infinite_features=False).

Biases whose exact gradient is zero: every bias but `fc`'s and the BNs' — the grouped `fc2`
convs (through the sum of the subsets into `gcn1.bn`), `down.0`, the MS-TCN branches' convs,
`residual.conv`, each `t{i}.mlp` (into its training-mode BatchNorm1d) and `to_joint_embedding`
(constant over (N, T) in each `data_bn` channel) — and `pos_embedding` (the same). The script
asserts that exactly these have a float64 gradient below 1e-10 of the largest. What float32
leaves of them is the metadata `cancelled_envelope`, as for infogcn_ntu60.
"""

import copy
import math

import numpy as np
import torch
from torch import nn

import blockgcn
import make_fixture
import make_infogcn_fixture as ig
import make_stgcn_fixture as st
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = make_fixture.REPO
FIXTURE = REPO / "tests" / "fixtures" / "blockgcn_ntu60.safetensors"
FORMAT = "sfhead-blockgcn-fixture-1"
MAX_BYTES = 1_000_000

DATASET = "ntu60"
TOPOLOGY = "official"
WINDOW = 16
# Twice the InfoGCN and MS-AAGCN scripts' 16: the dilated branches of the last blocks (4 frames
# left) have gradients whose sums nearly cancel, and 16 runs understate their float32 spread.
ENVELOPE_RUNS = 2 * ig.ENVELOPE_RUNS
FORMULA_CHECKS = [
    ("l1.gcn1.fc1", 0),
    ("l1.gcn1.fc1", 1),
    ("l10.gcn1.fc1", 14_999),
    ("l1.gcn1.rpe", 0),
    ("l7.gcn1.rpe", 287),
    ("topo.pl.centres", 0),
    ("topo.pl.centres", 127),
    ("topo.pl.sharpness", 0),
    ("topo.pl.sharpness", 127),
    ("pos_embedding", 0),
    ("pos_embedding", 3199),
    ("data_bn.weight", 6399),
    ("data_bn.running_var", 17),
    ("to_joint_embedding.weight", 383),
    ("to_joint_embedding.bias", 127),
    ("l1.gcn1.fc2.0.weight", 0),
    ("l5.gcn1.fc2.2.weight", 4095),
    ("l9.gcn1.fc2.1.bias", 255),
    ("l5.gcn1.down.0.weight", 32_767),
    ("l5.gcn1.down.1.running_var", 127),
    ("l2.gcn1.bn.weight", 5),
    ("l3.tcn1.branches.0.3.conv.weight", 5119),
    ("l8.tcn1.branches.2.4.running_mean", 63),
    ("l8.residual.conv.weight", 65_535),
    ("t0.mlp.weight", 8191),
    ("t9.mlp.bias", 255),
    ("t4.bn.running_var", 127),
    ("t5.bn.weight", 0),
    ("fc.weight", 15_359),
    ("fc.bias", 59),
    ("l9.tcn1.branches.1.3.conv.weight#sketch7", 20_479),
]


def entry_values(key, shape, bn_prefixes):
    """The float64 values of a float state entry: BlockGCN's rows, then make_infogcn_fixture's."""
    n = math.prod(shape)
    leaf = key.rpartition(".")[2]
    if leaf == "fc1":
        _, _, v, w = shape
        assert v == w, key
        return np.tile(np.eye(v).ravel(), n // (v * v)) + 0.1 * st.noise(key, n)
    if leaf == "rpe":
        return 0.1 + 0.05 * st.noise(key, n)
    if key == "topo.pl.centres":
        return 0.5 + math.sqrt(1.0 / 12) * st.noise(key, n)
    if key == "topo.pl.sharpness":
        return 2.0 + 0.2 * st.noise(key, n)
    return ig.entry_values(key, shape, bn_prefixes)


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


def cancelled_by_batch_norm(key, bn_prefixes):
    """A parameter that a training-mode BN removes: its exact gradient is zero."""
    if key == "pos_embedding":
        return True
    prefix, _, leaf = key.rpartition(".")
    return leaf == "bias" and prefix != "fc" and prefix not in bn_prefixes


def topology(model, x):
    """The persistence op's float64 deaths and the StructureElementLayer's output."""
    with torch.no_grad():
        deaths = blockgcn.deaths(blockgcn.normalised_distances(torch.as_tensor(x)))
        return deaths, model.topo.pl(deaths)


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = blockgcn.build(DATASET, TOPOLOGY)
    set_weights(model)
    state = model.state_dict()
    bn_prefixes = st.batch_norm_prefixes(state)
    for label, i in FORMULA_CHECKS:
        key = label.split("#")[0]
        assert i < state[key].numel(), (label, i)
        assert int(st.splitmix_bits(label, i + 1)[i]) == st.splitmix_scalar(label, i), label
    params = {k for k, _ in model.named_parameters()}
    names, x, y, valids = make_fixture.load_batch(WINDOW)

    model64 = copy.deepcopy(model).double()
    deaths, features = topology(model64, x.astype(np.float64))
    logits, loss, grads = st.training_step(model64, x.astype(np.float64), y)
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
        small = g.abs().max().item() < 1e-10 * largest
        assert small == cancelled_by_batch_norm(k, bn_prefixes), f"{k}: cancellation is not as expected"
    sketches = {k: st.sketch(k, g) for k, g in grads.items() if not st.is_full(g)}

    envelope = {k: 0.0 for k in grads if st.is_full(grads[k])}
    sketch_envelope = {k: np.zeros(st.SKETCH_VECTORS + 2) for k in sketches}
    output_envelope = {"logits": 0.0, "loss": 0.0, "deaths": 0.0, "topo_features": 0.0}
    cancelled = [k for k in grads if cancelled_by_batch_norm(k, bn_prefixes)]
    cancelled_envelope = 0.0
    for xj in envelope_inputs(x, runs=ENVELOPE_RUNS):
        model32 = copy.deepcopy(model)
        deaths32, features32 = topology(model32, xj)
        logits32, loss32, grads32 = st.training_step(model32, xj, y)
        output_envelope["logits"] = max(output_envelope["logits"], relative_error(logits32, logits))
        output_envelope["loss"] = max(output_envelope["loss"], abs(loss32 - loss) / loss)
        output_envelope["deaths"] = max(output_envelope["deaths"], relative_error(deaths32, deaths))
        output_envelope["topo_features"] = max(output_envelope["topo_features"], relative_error(features32, features))
        for k in envelope:
            envelope[k] = max(envelope[k], relative_error(grads32[k], grads[k]))
        largest32 = max(g.abs().max().item() for g in grads32.values())
        for k in cancelled:
            cancelled_envelope = max(cancelled_envelope, grads32[k].abs().max().item() / largest32)
        for k, want in sketches.items():
            errors = st.sketch_errors(st.sketch(k, grads32[k]), want)
            sketch_envelope[k] = np.maximum(sketch_envelope[k], errors)

    def scalar(v):
        return np.array(v, dtype=np.float32)

    after = {k: v.detach().clone() for k, v in model64.state_dict().items() if "running_" in k or "num_batches" in k}
    tensors = {
        "x": x,
        "y": y,
        "logits": logits.float().numpy(),
        "loss": scalar(loss),
        "deaths": deaths.float().numpy(),
        "topo_features": features.float().numpy(),
        "hops": model.l1.gcn1.hops.numpy(),
        "f32_envelope.logits": scalar(output_envelope["logits"]),
        "f32_envelope.loss": scalar(output_envelope["loss"]),
        "f32_envelope.deaths": scalar(output_envelope["deaths"]),
        "f32_envelope.topo_features": scalar(output_envelope["topo_features"]),
        "formula.noise": np.array([st.noise(label, i + 1)[i] for label, i in FORMULA_CHECKS]),
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
        "model": "blockgcn",
        "dataset": DATASET,
        "topology": TOPOLOGY,
        "input": "raw joints; the model applies the spine-relative transform (joint index 20)",
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "envelope_seed": str(SEED),
        "batches_tracked": str(st.BATCHES_ALREADY_TRACKED),
        "cancelled_envelope": f"{cancelled_envelope:.3e}",
        "full_gradient_max": str(st.FULL_GRADIENT_MAX),
        "sketch_vectors": str(st.SKETCH_VECTORS),
        "formula_checks": "\n".join(f"{label} {i}" for label, i in FORMULA_CHECKS),
        "state_dict": "\n".join(f"{k} {shape_text(t)} {kind(k)} {t.numel()}" for k, t in state.items()),
    }
    size = write_safetensors(FIXTURE, tensors, metadata, max_bytes=MAX_BYTES)

    kept = [envelope[k] for k in envelope if k not in cancelled]
    exponents = model64.topo.pl.sharpness.detach() ** 2
    print(f"samples {names}, labels {y.tolist()}, x {x.shape}; {len(state)} entries, {len(params)} parameters")
    print(f"loss {loss:.6f}; envelope: logits {output_envelope['logits']:.2e}, loss {output_envelope['loss']:.2e}")
    print(
        f"deaths {deaths.min().item():.3f}…{deaths.max().item():.3f} (envelope {output_envelope['deaths']:.2e}); "
        f"topo features {features.min().item():.3g}…{features.max().item():.3g}, per element spread over the "
        f"batch (std/mean) {(features.std(0) / features.mean(0)).min().item():.2e}…"
        f"{(features.std(0) / features.mean(0)).max().item():.2e} (envelope {output_envelope['topo_features']:.2e}); "
        f"largest s² {exponents.max().item():.2f}"
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
