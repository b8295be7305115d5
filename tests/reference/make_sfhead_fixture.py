"""Writes the SF-Head fixtures: one CTR-GCN + SF-Head (NTU60) training step in PyTorch per
attachment mode, and a ten-step training trajectory of CTR-GCN with and without SF-Head.

    tests/fixtures/ctrgcn_sfhead_tap.safetensors
    tests/fixtures/ctrgcn_sfhead_inline.safetensors
    tests/fixtures/trajectory_ntu60.safetensors

Weights: CTR-GCN's fixture weights (make_fixture.py: initialisation, perturbation, seed 1), then ten
SF-Heads at PyTorch's defaults, perturbed so that every used gradient is exercised, all on the int8
grid; both modes and both trajectories start from the same values. Input: the four clips of the
CTR-GCN fixture through the test-mode transform at 16 frames. Every key and encoding is described
in tests/fixtures/README.md.

    python tests/reference/make_sfhead_fixture.py
"""

import copy

import numpy as np
import safetensors.numpy
import torch

import ctrgcn
import make_fixture
import sf_head
from fixture_io import write_safetensors
from make_fixture import ENVELOPE_PERTURBATION, ENVELOPE_RUNS, SEED, envelope_inputs, f32_to_f24, relative_error

REPO = ctrgcn.REPO
FIXTURES = REPO / "tests" / "fixtures"
STEP_FIXTURE = {mode: FIXTURES / f"ctrgcn_sfhead_{mode}.safetensors" for mode in ("tap", "inline")}
TRAJECTORY_FIXTURE = FIXTURES / "trajectory_ntu60.safetensors"
STEP_FORMAT = "sfhead-sfhead-fixture-1"
TRAJECTORY_FORMAT = "sfhead-trajectory-fixture-1"
MAX_BYTES = 10_000_000

WINDOW = 16
BLOCKS = tuple(range(1, 11))
GROUPS = 8
OPTIONS = sf_head.LossOptions()
STEPS = 10
LR, MOMENTUM, WEIGHT_DECAY = make_fixture.LR, make_fixture.MOMENTUM, make_fixture.WEIGHT_DECAY
OPTIMISER = f"SGD lr={LR} momentum={MOMENTUM} nesterov=true weight_decay={WEIGHT_DECAY}"


# ---------------------------------------------------------------------------------------------
# Weights.


def perturb_heads(model, gen):
    """Moves every SF-Head off its default values (cweight = sweight = 0 would zero the gradients of
    gn, and of the f_t / f_s paths through the mean and GroupNorm). The gate convs keep their init;
    the unused `bn` keeps its defaults apart from the batch counter."""

    def uniform(t, lo, hi):
        return torch.empty_like(t).uniform_(lo, hi, generator=gen)

    def normal(t, std):
        return torch.empty_like(t).normal_(0.0, std, generator=gen)

    with torch.no_grad():
        for i in range(len(model.sf_heads)):
            for key, t in model.sf_heads[i].state_dict().items():
                gate_bn = key.startswith(("cv.", "tc.", "tv.")) and ".bn." in key
                if key.endswith("num_batches_tracked"):
                    t.fill_(make_fixture.BATCHES_ALREADY_TRACKED)
                elif key in ("cweight", "sweight"):
                    t.copy_(uniform(t, -0.5, 0.5))
                elif key in ("cbias", "sbias"):
                    t.add_(normal(t, 0.1))  # 1 + N(0, 0.1)
                elif key == "w":
                    t.add_(normal(t, 0.2))  # 1 + N(0, 0.2)
                elif key == "gn.weight" or (gate_bn and key.endswith(".weight")):
                    t.copy_(uniform(t, 0.8, 1.2))
                elif key == "gn.bias" or (gate_bn and key.endswith(".bias")):
                    t.copy_(normal(t, 0.05))
                elif gate_bn and key.endswith("running_mean"):
                    t.copy_(normal(t, 0.1))
                elif gate_bn and key.endswith("running_var"):
                    t.copy_(uniform(t, 0.5, 2.0))


def fixture_weights():
    """The tap model on the fixture weights (int8 grid) and their encodings by state-dict key."""
    gen = torch.Generator().manual_seed(SEED)
    backbone = ctrgcn.build("ntu60")
    ctrgcn.check_against_listing(backbone, ctrgcn.read_listing())
    ctrgcn.initialise(backbone, gen)
    make_fixture.perturb(backbone, gen)  # the CTR-GCN fixture's draws, in the same order

    model = ctrgcn.build("ntu60", sf_head="tap", sf_blocks=BLOCKS, groups=GROUPS)
    missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("sf_heads.") for k in missing)
    for head in model.sf_heads:
        sf_head.initialise(head, gen)
    perturb_heads(model, gen)
    return model, make_fixture.snap_weights(model)


# ---------------------------------------------------------------------------------------------
# One training step.


def training_step(model, x, y):
    """Training-mode forward, total loss (CE + λ·mean-over-heads F-CL and F-RL) and backward.

    Returns the logits, the loss terms as floats (loss, ce, con, red; con_heads, red_heads as
    arrays) and the gradients of the parameters that get one.
    """
    model.train()
    logits, feats = model(torch.as_tensor(x), return_feats=True)
    assert len(feats) == len(BLOCKS)
    losses = sf_head.total_loss(logits, torch.as_tensor(y), feats, persons=x.shape[-1], options=OPTIONS)
    losses["loss"].backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}
    terms = {k: v.detach().double().numpy() for k, v in losses.items()}
    return logits.detach(), terms, grads


def scalar_error(got, want):
    return abs(float(got) - float(want)) / max(abs(float(want)), 1e-300)


def step_fixture(mode, tap_model, weights, batch):
    """Tensors and metadata of one mode's training-step fixture."""
    _, x, y, _ = batch
    model = ctrgcn.build("ntu60", sf_head=mode, sf_blocks=BLOCKS, groups=GROUPS)
    model.load_state_dict(tap_model.state_dict())
    adjacency = ctrgcn.spatial_adjacency(ctrgcn.load_topology("ntu25"))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model64 = copy.deepcopy(model).double()
    logits, terms, grads = training_step(model64, x.astype(np.float64), y)
    after = {k: v.detach().clone() for k, v in model64.state_dict().items() if "running_" in k or "num_batches" in k}
    no_grad = [k for k, _ in model.named_parameters() if k not in grads]
    assert no_grad == [f"sf_heads.{i}.bn.{p}" for i in range(len(BLOCKS)) for p in ("weight", "bias")], no_grad
    for k, g in grads.items():
        # The BN-cancelled conv biases hold float64 rounding noise here, which is non-zero too.
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
    for k, v in after.items():
        # Every BN's statistics move, the gate BNs' included, except those of the unused `bn`.
        unused = k.startswith("sf_heads.") and k.split(".")[2] == "bn"
        assert torch.equal(v, before[k].to(v.dtype)) == unused, f"{k} after the forward"

    # PyTorch's own float32 step, unperturbed and on perturbed inputs: the envelope.
    envelope = np.zeros(len(grads))
    scalar_envelope = {"logits": 0.0, "loss": 0.0, "ce": 0.0, "con": 0.0, "red": 0.0}
    for xj in envelope_inputs(x):
        logits32, terms32, grads32 = training_step(copy.deepcopy(model), xj, y)
        assert grads32.keys() == grads.keys()
        envelope = np.maximum(envelope, [relative_error(grads32[k], grads[k]) for k in grads])
        scalar_envelope["logits"] = max(scalar_envelope["logits"], relative_error(logits32, logits))
        for term in ("loss", "ce", "con", "red"):
            scalar_envelope[term] = max(scalar_envelope[term], scalar_error(terms32[term], terms[term]))

    tensors = {
        "x": x,
        "y": y,
        "adjacency": adjacency,
        "logits": logits.float().numpy(),
        "loss": np.array(terms["loss"], dtype=np.float32),
        "loss.ce": np.array(terms["ce"], dtype=np.float32),
        "loss.con": np.array(terms["con"], dtype=np.float32),
        "loss.red": np.array(terms["red"], dtype=np.float32),
        "loss.con.heads": terms["con_heads"].astype(np.float32),
        "loss.red.heads": terms["red_heads"].astype(np.float32),
        "f32_envelope": envelope.astype(np.float32),
        "f32_envelope.logits": np.array(scalar_envelope["logits"], dtype=np.float32),
    }
    for term in ("loss", "ce", "con", "red"):
        key = "f32_envelope.loss" if term == "loss" else f"f32_envelope.loss.{term}"
        tensors[key] = np.array(scalar_envelope[term], dtype=np.float32)
    add_weights(tensors, model, weights)
    for key, t in after.items():
        tensors[f"after.{key}"] = t.numpy() if t.dtype == torch.int64 else t.float().numpy()
    for key, g in grads.items():
        tensors[f"grad.{key}"] = f32_to_f24(g.float())

    metadata = {
        "format": STEP_FORMAT,
        "model": "ctrgcn",
        "dataset": "ntu60",
        "mode": mode,
        "reference": "float64",
        "no_grad": "\n".join(no_grad),
        **common_metadata(model, batch),
    }
    return tensors, metadata, terms, logits


def add_weights(tensors, model, weights):
    """weight.KEY / weight_scale.KEY for every float entry of model's state, I64 counters."""
    for key, t in model.state_dict().items():
        if t.dtype == torch.int64:
            tensors[f"weight.{key}"] = np.array(int(t), dtype=np.int64)
        else:
            q, scale = weights[key]
            tensors[f"weight.{key}"] = q
            tensors[f"weight_scale.{key}"] = np.array(scale, dtype=np.float32)


def common_metadata(model, batch):
    names, _, _, valids = batch
    return {
        "blocks": ",".join(map(str, BLOCKS)),
        "groups": str(GROUPS),
        "alpha": str(OPTIONS.alpha),
        "tau": str(OPTIONS.tau),
        "margin": str(OPTIONS.margin),
        "gamma": str(OPTIONS.gamma),
        "eps": str(OPTIONS.eps),
        "lambda_con": str(OPTIONS.lambda_con),
        "lambda_red": str(OPTIONS.lambda_red),
        "item": OPTIONS.item,
        "fcl_terms": OPTIONS.fcl_terms,
        "heads": OPTIONS.heads,
        "phi_sign": OPTIONS.phi_sign,
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "window": str(WINDOW),
        "seed": str(SEED),
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "state_dict_keys": "\n".join(model.state_dict().keys()),
    }


# ---------------------------------------------------------------------------------------------
# Trajectory: the same batch for STEPS steps of SGD, BN running statistics evolving.


def trajectory(model, x, y, with_heads):
    """Losses of the forward before each of STEPS updates; with heads also ce, con, red."""
    optimiser = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY, foreach=False
    )
    losses = {k: [] for k in ("loss", "ce", "con", "red")}
    for _ in range(STEPS):
        optimiser.zero_grad(set_to_none=True)
        model.train()
        if with_heads:
            logits, feats = model(torch.as_tensor(x), return_feats=True)
            terms = sf_head.total_loss(logits, torch.as_tensor(y), feats, persons=x.shape[-1], options=OPTIONS)
        else:
            logits = model(torch.as_tensor(x))
            terms = {"loss": torch.nn.functional.cross_entropy(logits, torch.as_tensor(y))}
        terms["loss"].backward()
        optimiser.step()
        for k, v in terms.items():
            if k in losses:
                losses[k].append(v.item())
    return {k: np.array(v) for k, v in losses.items() if v}


def trajectory_fixture(tap_model, weights, batch):
    _, x, y, _ = batch
    plain = ctrgcn.build("ntu60")
    plain.load_state_dict({k: v for k, v in tap_model.state_dict().items() if not k.startswith("sf_heads.")})
    runs = {"ctrgcn": (plain, False), "sfhead": (tap_model, True)}
    tensors = {"x": x, "y": y}
    results = {}
    inputs = envelope_inputs(x)
    for name, (model, with_heads) in runs.items():
        reference = trajectory(copy.deepcopy(model).double(), x.astype(np.float64), y, with_heads)
        envelope = np.zeros(STEPS)
        for xj in inputs:
            run = trajectory(copy.deepcopy(model), xj, y, with_heads)
            envelope = np.maximum(envelope, np.abs(run["loss"] - reference["loss"]))
        assert np.isfinite(reference["loss"]).all() and reference["loss"][-1] < reference["loss"][0]
        tensors[f"{name}.loss"] = reference["loss"].astype(np.float32)
        tensors[f"{name}.envelope"] = envelope.astype(np.float32)
        if with_heads:
            for term in ("ce", "con", "red"):
                tensors[f"{name}.loss.{term}"] = reference[term].astype(np.float32)
        results[name] = (reference, envelope)
    add_weights(tensors, tap_model, weights)
    metadata = {
        "format": TRAJECTORY_FORMAT,
        "model": "ctrgcn",
        "dataset": "ntu60",
        "mode": "tap",
        "reference": "float64",
        "optimiser": OPTIMISER,
        "steps": str(STEPS),
        **common_metadata(tap_model, batch),
    }
    return tensors, metadata, results


# ---------------------------------------------------------------------------------------------


def summary(values):
    return f"median {np.median(values):.2e}, max {np.max(values):.2e}"


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    tap_model, weights = fixture_weights()
    # The backbone is exactly the CTR-GCN fixture's.
    ctrgcn_fixture = safetensors.numpy.load_file(make_fixture.FIXTURE)
    for key, (q, scale) in weights.items():
        if not key.startswith("sf_heads."):
            assert np.array_equal(ctrgcn_fixture[f"weight.{key}"], q), key
            assert ctrgcn_fixture[f"weight_scale.{key}"] == np.float32(scale), key
    batch = make_fixture.load_batch(WINDOW)
    names, x, y, valids = batch
    print(f"samples {names}, labels {y.tolist()}, valid frames {valids}, x {x.shape}")

    tap_logits = None
    for mode, path in STEP_FIXTURE.items():
        tensors, metadata, terms, logits = step_fixture(mode, tap_model, weights, batch)
        if mode == "tap":
            # A tap leaves the forward alone: the logits are plain CTR-GCN's.
            plain = ctrgcn.build("ntu60").double()
            state = {k: v for k, v in tap_model.state_dict().items() if not k.startswith("sf_heads.")}
            plain.load_state_dict(state)
            plain.train()
            assert torch.equal(plain(torch.from_numpy(x).double()), logits)
            tap_logits = logits
        else:
            assert not torch.equal(logits, tap_logits)
        size = write_safetensors(path, tensors, metadata, max_bytes=MAX_BYTES)
        print(
            f"{mode}: loss {terms['loss']:.6f} = ce {terms['ce']:.6f}"
            f" + {OPTIONS.lambda_con} · con {terms['con']:.6f} + {OPTIONS.lambda_red} · red {terms['red']:.6f}"
        )
        print(f"  con per head {np.round(terms['con_heads'], 6).tolist()}")
        print(f"  red per head {np.round(terms['red_heads'], 6).tolist()}")
        envelope = tensors["f32_envelope"]
        above = (envelope > 1e-3).sum()
        print(f"  float32 envelope of {envelope.size} gradients: {summary(envelope)}, above 1e-3: {above}")
        grad_keys = [k for k in metadata["state_dict_keys"].split("\n") if f"grad.{k}" in tensors]
        heads = [i for i, k in enumerate(grad_keys) if k.startswith("sf_heads.")]
        print(f"  of which the {len(heads)} SF-Head gradients: {summary(envelope[heads])}")
        scalars = [f"{k[len('f32_envelope.'):]} {float(v):.2e}" for k, v in tensors.items() if "envelope." in k]
        print("  envelope " + ", ".join(scalars))
        print(f"  wrote {path.relative_to(REPO)} ({size:,} bytes, {len(tensors)} tensors)")

    tensors, metadata, results = trajectory_fixture(tap_model, weights, batch)
    size = write_safetensors(TRAJECTORY_FIXTURE, tensors, metadata, max_bytes=MAX_BYTES)
    for name, (reference, envelope) in results.items():
        print(f"trajectory {name}: loss {np.round(reference['loss'], 6).tolist()}")
        for term in ("ce", "con", "red"):
            if term in reference:
                print(f"  {term} {np.round(reference[term], 6).tolist()}")
        print(f"  float32 envelope |Δloss| {np.array2string(envelope, precision=2)}")
    print(f"wrote {TRAJECTORY_FIXTURE.relative_to(REPO)} ({size:,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
