"""Writes tests/fixtures/infogcn_ntu60.safetensors: one InfoGCN (infogcn.py, NTU60) training step
in PyTorch, with its three loss terms, small enough to commit although the model has 1.56M
parameters.

    python tests/reference/make_infogcn_fixture.py

The same construction as tests/fixtures/aagcn_ntu60.safetensors (make_stgcn_fixture.py, whose
docstring defines the weight formula, the sketch of a large gradient and the float32 envelope;
make_aagcn_fixture.py, whose rows for Conv1d and Linear weights apply here too): weights are a
function of their state-dict key and flat index; the envelope takes sixteen float32 runs
(ENVELOPE_RUNS); the input is the four clips of the CTR-GCN fixtures at 16 frames.

Model: infogcn.build("ntu60", k=8). k = 8 makes the input transform I − A_outward⁸ exactly the
identity (NTU's tree is at most 7 links deep): the engine applies the k-th mode transform in its
feeder, so the model sees the transformed joints as they are.

The formula's table gains these rows, checked in this order before make_aagcn_fixture.py's
table (P is the key's module prefix; a BN is a prefix with a running_mean entry):

    pos_embedding (1, V, C)        u                              (officially randn)
    *.shared_topology (H, V, V)    [row = column] + 0.1 · u       (PA's rule: the identity, perturbed)
    P.weight (C), P not a BN       1 + 0.1 · u                    (LayerNorm γ, `*.attn.ln.weight`)
    *.attn.to_qk.weight (2·H·d, C) √(1 / (2 · C)) · u             (half the Linear row's std)
    decoder.weight (K, C)          √(2 / K) · u                   (fc.weight's rule: the classifier)
    decoder.bias                   √(1 / 768) · u                 (fc.bias's rule)

Every other entry takes an existing row: `*.attn.ln.bias` and the other Linear biases
(`to_joint_embedding`, `to_qk`, `fc_mu`, `fc_logvar`) the conv biases' 0.05 · u; `fc.weight`
and `fc.bias` their own rows (√(2/256) and √(1/768) are the std of the official Xavier-uniform
with ReLU gain and of PyTorch's default bias); `to_joint_embedding`, `fc_mu` and `fc_logvar`
weights the Linear row √(2 / I) · u; `conv_d` its row with H = 3 heads as the three
subsets (conv_branch_init's scale). Officially `to_qk.weight` is N(0, 1): its attention logits
then have a spread of about C (64…256) and the softmax is one-hot, with almost no gradient. The
Linear row's √(2 / C) still makes some maps nearly one-hot (largest weight 0.99), and each
block then multiplies float32's relative error by about two (1.9e-4 in l9's attention, median
gradient error 1.8e-2 in one float32 run); at √(1 / (2C)) the logits' spread is 0.25–0.45, the
largest weight about 0.3, and the float32 run's logits and median gradient errors are 1.5e-6 and
6e-3. Officially `agcn.bn`'s γ is 1e-6; here, as everywhere, 1 + 0.1 · u.

Loss: label-smoothing cross-entropy (0.1) + 0.1 · mmd + 1e-4 · ‖mean_n z‖₂ (infogcn.losses).
The latent noise ε is `eps`, (N, 256) standard normal from numpy's default_rng(SEED), stored as
float32 and used as those values in the float64 reference and in every float32 run. The class
prior `z_prior` (60, 256) is infogcn.orthogonal_prior(60, gain 3) from a torch generator seeded
with SEED; it is not in the state dict. Labels: those of the four clips (A − 1), with the third
replaced by the first (LABEL_RULE), so that one class has two clips and the MMD's class mean
averages two latents.

Biases whose exact gradient is zero: every Conv2d bias (`conv_d` through the sum of the heads
into `agcn.bn`, `down.0`, the MS-TCN branches' 1×1 convs and temporal convs, `residual.conv`:
each feeds a training-mode BN), and `to_joint_embedding.bias` and `pos_embedding`, which are
constant over (N, T) in each of `data_bn`'s M·V·C channels. The rule: a key is cancelled when it
is `pos_embedding` or `to_joint_embedding.bias`, or it is a `bias` whose sibling `weight` has
four dimensions. The script asserts that exactly these have a float64 gradient below 1e-10 of
the largest. `to_qk.bias` has real gradients in its first half (the queries) and zeros in its
second (a key bias adds a term that is constant over the softmax's j); it is compared whole.
What float32 leaves of the cancelled gradients is recorded as `cancelled_envelope` (metadata):
the largest |g| of any of them over the largest gradient, in any float32 run: about 1e-4 here,
ten times the fixed 1e-5 bar the ST-GCN and MS-AAGCN checks use.
"""

import copy
import math

import numpy as np
import torch
from torch import nn

import infogcn
import make_aagcn_fixture as aa
import make_fixture
import make_stgcn_fixture as st
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = make_fixture.REPO
FIXTURE = REPO / "tests" / "fixtures" / "infogcn_ntu60.safetensors"
FORMAT = "sfhead-infogcn-fixture-1"
MAX_BYTES = 1_000_000

DATASET = "ntu60"
WINDOW = 16
K = 8
ENVELOPE_RUNS = aa.ENVELOPE_RUNS
LABEL_RULE = "the clips' labels with the third replaced by the first"
LOSS_TERMS = ("ce", "mmd", "l2_z_mean")
FORMULA_CHECKS = [
    ("pos_embedding", 0),
    ("pos_embedding", 1599),
    ("data_bn.weight", 3199),
    ("data_bn.running_var", 17),
    ("to_joint_embedding.weight", 191),
    ("to_joint_embedding.bias", 63),
    ("l1.agcn.shared_topology", 0),
    ("l1.agcn.shared_topology", 1),
    ("l9.agcn.shared_topology", 1874),
    ("l1.agcn.conv_d.0.weight", 0),
    ("l4.agcn.conv_d.2.weight", 8191),
    ("l4.agcn.down.0.bias", 127),
    ("l2.agcn.bn.weight", 5),
    ("l3.agcn.attn.to_qk.weight", 3071),
    ("l8.agcn.attn.to_qk.bias", 191),
    ("l5.agcn.attn.ln.weight", 127),
    ("l6.agcn.attn.ln.bias", 0),
    ("l7.tcn.branches.0.3.conv.weight", 2303),
    ("l9.tcn.branches.2.4.running_mean", 63),
    ("l7.residual.conv.weight", 32767),
    ("fc.weight", 65_535),
    ("fc.bias", 255),
    ("fc_mu.weight", 1000),
    ("fc_logvar.bias", 7),
    ("decoder.weight", 15_359),
    ("decoder.bias", 59),
    ("l9.tcn.branches.1.3.conv.weight#sketch7", 20_479),
]


def entry_values(key, shape, bn_prefixes):
    """The float64 values of a float state entry: InfoGCN's rows, then make_aagcn_fixture's."""
    n = math.prod(shape)
    prefix, _, leaf = key.rpartition(".")
    if prefix not in bn_prefixes:
        u = st.noise(key, n)
        if key == "pos_embedding":
            return u
        if leaf == "shared_topology":
            heads, v, _ = shape
            return np.tile(np.eye(v).ravel(), heads) + 0.1 * u
        if leaf == "weight" and len(shape) == 1:
            return 1.0 + 0.1 * u
        if key.endswith(".attn.to_qk.weight"):
            return math.sqrt(1.0 / (2 * shape[1])) * u
        if key == "decoder.weight":
            return math.sqrt(2.0 / shape[0]) * u
        if key == "decoder.bias":
            return math.sqrt(1.0 / 768) * u
    return aa.entry_values(key, shape, bn_prefixes)


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
            prefix, _, leaf = key.rpartition(".")
            if leaf == "weight" and t.dim() == 1 and prefix not in bn_prefixes:
                assert isinstance(modules[prefix], nn.LayerNorm), key
            values = entry_values(key, tuple(t.shape), bn_prefixes).astype(np.float32)
            t.copy_(torch.from_numpy(values.reshape(t.shape)))


def cancelled_by_batch_norm(key, state):
    """A parameter that a training-mode BN removes: its exact gradient is zero."""
    if key in ("pos_embedding", "to_joint_embedding.bias"):
        return True
    prefix, _, leaf = key.rpartition(".")
    return leaf == "bias" and state[f"{prefix}.weight"].dim() == 4


def labels(y):
    y = y.copy()
    y[2] = y[0]
    return y


def training_step(model, x, y, eps, z_prior):
    """Training-mode forward with the given ε, the three-term loss and backward: logits, the loss
    terms (float), gradients."""
    model.train()
    logits, z = model(torch.as_tensor(x), torch.as_tensor(eps))
    terms = infogcn.losses(logits, z, torch.as_tensor(y), z_prior)
    terms["total"].backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return logits.detach(), {k: v.item() for k, v in terms.items()}, grads


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = infogcn.build(DATASET, K)
    assert torch.equal(model.A_vector, torch.eye(model.num_point, dtype=torch.float64))
    set_weights(model)
    state = model.state_dict()
    for label, i in FORMULA_CHECKS:
        key = label.split("#")[0]
        assert i < state[key].numel(), (label, i)
        assert int(st.splitmix_bits(label, i + 1)[i]) == st.splitmix_scalar(label, i), label
    params = {k for k, _ in model.named_parameters()}
    names, x, clip_labels, valids = make_fixture.load_batch(WINDOW)
    y = labels(clip_labels)
    eps = np.random.default_rng(SEED).standard_normal((x.shape[0], infogcn.LATENT)).astype(np.float32)
    z_prior = infogcn.orthogonal_prior(model.num_class, infogcn.Z_PRIOR_GAIN, torch.Generator().manual_seed(SEED))

    model64 = copy.deepcopy(model).double()
    logits, loss, grads = training_step(model64, x.astype(np.float64), y, eps.astype(np.float64), z_prior.double())
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
        small = g.abs().max().item() < 1e-10 * largest
        assert small == cancelled_by_batch_norm(k, state), f"{k}: cancellation is not as expected"
    sketches = {k: st.sketch(k, g) for k, g in grads.items() if not st.is_full(g)}

    envelope = {k: 0.0 for k in grads if st.is_full(grads[k])}
    sketch_envelope = {k: np.zeros(st.SKETCH_VECTORS + 2) for k in sketches}
    output_envelope = {"logits": 0.0} | {term: 0.0 for term in loss}
    # A cancelled gradient is float32 noise: its largest value relative to the largest gradient.
    cancelled = [k for k in grads if cancelled_by_batch_norm(k, state)]
    cancelled_envelope = 0.0
    for xj in envelope_inputs(x, runs=ENVELOPE_RUNS):
        logits32, loss32, grads32 = training_step(copy.deepcopy(model), xj, y, eps, z_prior)
        output_envelope["logits"] = max(output_envelope["logits"], relative_error(logits32, logits))
        for term, value in loss.items():
            output_envelope[term] = max(output_envelope[term], abs(loss32[term] - value) / abs(value))
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
        "eps": eps,
        "z_prior": z_prior.numpy(),
        "logits": logits.float().numpy(),
        "loss": scalar(loss["total"]),
        "f32_envelope.logits": scalar(output_envelope["logits"]),
        "f32_envelope.loss": scalar(output_envelope["total"]),
        "formula.noise": np.array([st.noise(label, i + 1)[i] for label, i in FORMULA_CHECKS]),
        "formula.value": np.array([formula_value(label, i, state) for label, i in FORMULA_CHECKS], dtype=np.float32),
    }
    for term in LOSS_TERMS:
        tensors[f"loss.{term}"] = scalar(loss[term])
        tensors[f"f32_envelope.loss.{term}"] = scalar(output_envelope[term])
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
        "model": "infogcn",
        "dataset": DATASET,
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "k": str(K),
        "num_head": str(infogcn.NUM_HEAD),
        "noise_ratio": str(infogcn.NOISE_RATIO),
        "z_prior_gain": str(infogcn.Z_PRIOR_GAIN),
        "label_smoothing": str(infogcn.SMOOTHING),
        "lambda_mmd": str(infogcn.LAMBDA_MMD),
        "lambda_z_mean": str(infogcn.LAMBDA_Z_MEAN),
        "labels": LABEL_RULE,
        "eps_seed": str(SEED),
        "z_prior_seed": str(SEED),
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

    cancelled = [k for k in grads if cancelled_by_batch_norm(k, state)]
    kept = [envelope[k] for k in envelope if k not in cancelled]
    terms = ", ".join(f"{t} {loss[t]:.6f} (envelope {output_envelope[t]:.2e})" for t in ("total",) + LOSS_TERMS)
    print(f"samples {names}, labels {y.tolist()}, x {x.shape}; {len(state)} entries, {len(params)} parameters")
    print(f"loss: {terms}")
    print(f"envelope: logits {output_envelope['logits']:.2e}")
    print(f"{len(cancelled)} BN-cancelled gradients")
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
