"""Writes tests/fixtures/ctrgcn_ntu60.safetensors: one CTR-GCN (NTU60) training step in PyTorch.

Weights: the initialisation of ctrgcn.py, perturbed so that every gradient is exercised, on an
int8 grid. Input: four real NTU60 clips (tests/fixtures/ntu60_clips.safetensors) through the
test-mode feeder transform. Recorded: logits, loss, every parameter gradient, the BN running
statistics after the forward, the weights after one SGD step, and the float32 envelope: how far
PyTorch's own float32 step lands from the float64 one over a few runs on imperceptibly perturbed
inputs. Every key and encoding is described in tests/fixtures/README.md.

    python tests/reference/make_fixture.py
"""

import copy
import math

import numpy as np
import safetensors.numpy
import torch
import torch.nn.functional as F

import ctrgcn
from fixture_io import write_safetensors

REPO = ctrgcn.REPO
CLIPS = REPO / "tests" / "fixtures" / "ntu60_clips.safetensors"
FIXTURE = REPO / "tests" / "fixtures" / "ctrgcn_ntu60.safetensors"
FORMAT = "sfhead-ctrgcn-fixture-3"
MAX_BYTES = 10_000_000

SEED = 1
WINDOW = 64
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 4e-4
BATCHES_ALREADY_TRACKED = 10
# The float32 envelope: run 0 on x itself, run j ≥ 1 on x·(1 + 1e-6·e_j), e_j ~ N(0, 1) per element.
ENVELOPE_RUNS = 4
ENVELOPE_PERTURBATION = 1e-6


# ---------------------------------------------------------------------------------------------
# Input: the NTU feeder in test mode.


def test_transform(row, window=WINDOW):
    """(T_pad, 150) stage-3 row → (3, window, 25, 2): valid frames, crop [b, valid − b), linear
    resize."""
    t_pad = row.shape[0]
    x = row.reshape(t_pad, 2, 25, 3).transpose(3, 0, 2, 1)  # (C, T, V, M)
    valid = int((x.sum(axis=(0, 2, 3)) != 0).sum())
    b = int(0.025 * valid)
    clip = x[:, b : valid - b].astype(np.float64)
    length = clip.shape[1]
    j = np.arange(window, dtype=np.float64)
    src = np.maximum((j + 0.5) * length / window - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, length - 1)
    lam = (src - i0)[None, :, None, None]
    out = (1.0 - lam) * clip[:, i0] + lam * clip[:, i1]
    # PyTorch's own resampler, which the original feeder calls, agrees to float32 rounding.
    flat = torch.from_numpy(np.ascontiguousarray(x[:, b : valid - b].transpose(0, 2, 3, 1)))
    flat = flat.reshape(1, -1, length)
    torch_out = F.interpolate(flat, size=window, mode="linear", align_corners=False)
    torch_out = torch_out.reshape(3, 25, 2, window).permute(0, 3, 1, 2).numpy()
    assert np.abs(torch_out - out).max() <= 1e-6 * max(1.0, np.abs(out).max())
    return out.astype(np.float32), valid


def load_batch(window=WINDOW):
    """The four clips in batch order: names, x (4, 3, window, 25, 2) float32, labels, valid frames."""
    clips = safetensors.numpy.load_file(CLIPS)
    with safetensors.safe_open(CLIPS, "np") as f:
        names = f.metadata()["order"].split(",")
    xs, valids = zip(*(test_transform(clips[name], window) for name in names))
    x = np.stack(xs)
    labels = [int(name[name.index("A") + 1 :]) - 1 for name in names]
    return names, x, np.array(labels, dtype=np.int64), list(valids)


# ---------------------------------------------------------------------------------------------
# Weights: the initialisation, perturbed, then snapped to int8 × 2^e so that stored values are exact.


def perturb(model, gen):
    """Moves the weights off the init's special values so that every gradient is non-zero."""

    def uniform(t, lo, hi):
        return torch.empty_like(t).uniform_(lo, hi, generator=gen)

    def normal(t, std):
        return torch.empty_like(t).normal_(0.0, std, generator=gen)

    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(BATCHES_ALREADY_TRACKED)
            elif name.endswith(".alpha"):
                # α = 0 would zero the gradients of conv1, conv2 and conv4.
                sign = torch.where(uniform(t, 0, 1) < 0.5, -1.0, 1.0)
                t.copy_(sign * uniform(t, 0.25, 0.75))
            elif name.endswith(".PA"):
                t.add_(normal(t, 0.05))
            elif name.endswith("gcn1.bn.weight"):
                t.copy_(uniform(t, 0.5, 1.5))  # γ = 1e-6 would mute the graph branch
            elif name.endswith("running_mean"):
                t.copy_(normal(t, 0.1))
            elif name.endswith("running_var"):
                t.copy_(uniform(t, 0.5, 2.0))
            elif name.endswith(".weight") and t.dim() == 1:  # BN γ
                t.mul_(uniform(t, 0.8, 1.2))
            elif name.endswith(".bias"):
                t.add_(normal(t, 0.05))


def quantise(t):
    """int8 q and a power-of-two scale s with q·s == t's snapped value exactly."""
    m = t.abs().max().item()
    exponent = math.ceil(math.log2(m / 127)) if m > 0 else 0
    scale = 2.0**exponent
    q = torch.round(t.double() / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


def snap_weights(model):
    """Replaces every float state entry by its int8 × 2^e value; returns the encodings by key."""
    encoded = {}
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype == torch.int64:
                continue
            q, scale = quantise(t)
            t.copy_(q.float() * scale)
            assert torch.equal(q.float() * np.float32(scale), t), name
            encoded[name] = (q.numpy(), scale)
    return encoded


# ---------------------------------------------------------------------------------------------
# Output encodings.


def f32_to_f24(t):
    """float32 rounded to nearest-even at bit 8 of its bit pattern; the upper 3 bytes, little-endian."""
    u = t.detach().numpy().astype(np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7F + ((u >> 8) & 1)) >> 8
    assert (r < 1 << 24).all()
    b = np.stack([(r >> s) & 0xFF for s in (0, 8, 16)], axis=-1).astype(np.uint8)
    decoded = (r << 8).astype(np.uint32).view(np.float32)
    g = t.detach().numpy()
    assert np.isfinite(decoded).all()
    assert (np.abs(decoded - g) <= np.abs(g) * 2.0**-16).all()
    return b


def delta_to_f16(before, after):
    """after − before (exact in float64) / 2^e rounded to float16, e putting the largest at 2^14..2^15."""
    delta = after.double().numpy() - before.double().numpy()
    m = np.abs(delta).max()
    exponent = math.floor(math.log2(m)) - 14 if m > 0 else 0
    scale = 2.0**exponent
    h = (delta / scale).astype(np.float16)
    assert np.isfinite(h).all()
    assert (np.abs(h.astype(np.float64) * scale - delta) <= np.abs(delta) * 2.0**-11 + m * 2.0**-38).all()
    return h, scale


# ---------------------------------------------------------------------------------------------


def training_step(model, x, y):
    """Training-mode forward, batch-mean cross-entropy and backward: logits, loss, gradients."""
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return logits.detach(), loss.item(), grads


def relative_error(got, want):
    """‖got − want‖₂ / ‖want‖₂ in float64."""
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


def envelope_inputs(x, runs=ENVELOPE_RUNS, seed=SEED):
    """The float32 inputs of the envelope runs: x itself, then x·(1 + 1e-6·e_j) rounded to float32,
    e_j ~ N(0, 1) per element from a generator of its own. Zeros (padding) stay zero."""
    gen = torch.Generator().manual_seed(seed)
    x64 = torch.from_numpy(x).double()
    inputs = [x]
    for _ in range(runs - 1):
        e = torch.randn(x64.shape, generator=gen, dtype=torch.float64)
        inputs.append((x64 * (1.0 + ENVELOPE_PERTURBATION * e)).float().numpy())
    return inputs


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)

    listing = ctrgcn.read_listing()
    model = ctrgcn.build("ntu60")
    ctrgcn.check_against_listing(model, listing)
    adjacency = model.l1.gcn1.PA.detach().numpy().copy()
    ctrgcn.initialise(model, gen)
    perturb(model, gen)
    weights = snap_weights(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    tracked_before = {k: int(v) for k, v in model.state_dict().items() if v.dtype == torch.int64}

    for name, p in model.named_parameters():
        if name.endswith(".alpha"):
            assert p.item() != 0.0, name
        if name.endswith(".PA"):
            assert (p.detach().numpy() != adjacency).any(), name

    names, x, y, valids = load_batch()
    # The reference is the same model in float64 on the same (float32-exact) weights and input.
    # PyTorch's own float32 step is run too, to record how far float32 itself lands from it.
    model64 = copy.deepcopy(model).double()
    model32 = copy.deepcopy(model)
    logits32, _, grads32 = training_step(model, torch.from_numpy(x), y)
    logits, loss, grads = training_step(model64, torch.from_numpy(x).double(), y)
    for k, g in grads.items():
        assert torch.isfinite(g).all() and (g != 0).any(), f"gradient of {k} is not exercised"
    f32_error = np.array(
        [relative_error(grads32[k], grads[k]) for k in grads],
        dtype=np.float32,
    )
    logits_error = relative_error(logits32, logits)
    assert logits_error < 1e-5, f"float32 logits differ from float64 by {logits_error}"
    # The envelope: run 0 is the float32 step above, runs 1… see perturbed inputs.
    f32_envelope = f32_error.copy()
    for xj in envelope_inputs(x)[1:]:
        _, _, grads_j = training_step(copy.deepcopy(model32), torch.from_numpy(xj), y)
        errors = np.array([relative_error(grads_j[k], grads[k]) for k in grads], dtype=np.float32)
        f32_envelope = np.maximum(f32_envelope, errors)
    after_forward = {
        k: v.detach().clone() for k, v in model64.state_dict().items() if "running_" in k or "num_batches" in k
    }

    optimiser = torch.optim.SGD(
        model64.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY, foreach=False
    )
    optimiser.step()
    updated = {k: p.detach().clone() for k, p in model64.named_parameters()}

    tensors = {
        "x": x,
        "y": y,
        "adjacency": adjacency,
        "logits": logits.detach().float().numpy(),
        "loss": np.array(loss, dtype=np.float32),
        "f32_error": f32_error,
        "f32_envelope": f32_envelope,
    }
    for key, (q, scale) in weights.items():
        tensors[f"weight.{key}"] = q
        tensors[f"weight_scale.{key}"] = np.array(scale, dtype=np.float32)
    for key, count in tracked_before.items():
        tensors[f"weight.{key}"] = np.array(count, dtype=np.int64)
    for key, t in after_forward.items():
        tensors[f"after.{key}"] = t.numpy() if t.dtype == torch.int64 else t.float().numpy()
    for key, g in grads.items():
        tensors[f"grad.{key}"] = f32_to_f24(g.float())
        h, scale = delta_to_f16(before[key], updated[key])
        tensors[f"update.{key}"] = h
        tensors[f"update_scale.{key}"] = np.array(scale, dtype=np.float32)

    metadata = {
        "format": FORMAT,
        "model": "ctrgcn",
        "dataset": "ntu60",
        "samples": ",".join(names),
        "valid_frames": ",".join(map(str, valids)),
        "seed": str(SEED),
        "optimiser": f"SGD lr={LR} momentum={MOMENTUM} nesterov=true weight_decay={WEIGHT_DECAY}",
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(ENVELOPE_RUNS),
        "envelope_perturbation": str(ENVELOPE_PERTURBATION),
        "state_dict_keys": "\n".join(model.state_dict().keys()),
    }
    size = write_safetensors(FIXTURE, tensors, metadata, max_bytes=MAX_BYTES)

    print(f"samples {names}, labels {y.tolist()}, valid frames {valids}")
    print(f"loss {loss:.6f}")
    print(f"PyTorch float32 gradients vs float64: median {np.median(f32_error):.2e}, max {f32_error.max():.2e}")
    print(
        f"float32 envelope over {ENVELOPE_RUNS} runs: median {np.median(f32_envelope):.2e}, "
        f"max {f32_envelope.max():.2e}, above 1e-3: {(f32_envelope > 1e-3).sum()} "
        f"(one run: {(f32_error > 1e-3).sum()})"
    )
    print(f"wrote {FIXTURE.relative_to(REPO)} ({size:,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
