"""The PyTorch side of `sfhead import` and `sfhead export` (docs/interop.md).

Without arguments, writes the interop fixtures from the reference model (ctrgcn.py), NW-UCLA:

- tests/fixtures/interop_ucla_state_dict.safetensors: a CTR-GCN state dict exactly as
  `safetensors.torch.save_file(model.state_dict(), path)` writes it (float32 parameters and
  buffers, int64 `num_batches_tracked`). Seeded initialisation, perturbed as make_fixture.py
  does so that every parameter matters (alpha ≠ 0, PA ≠ A, `gcn1.bn.weight` ≠ 1e-6); the BN
  running statistics are those of six other real clips, as a model in use has them, then
  perturbed, so that evaluation depends on them.
- tests/fixtures/interop_ucla_eval.safetensors: two real NW-UCLA clips through the test-mode
  feeder at 16 frames (`x`), the model's eval-mode logits in float64 rounded to float32
  (`logits`) and the float32 envelope of those logits (`f32_envelope.logits`, see "The float32
  envelope" in tests/fixtures/README.md).
- tests/fixtures/interop_ucla_state_dicts.txt: `state_dict()` listings (key, dtype, shape) of
  the plain model and of the model with SF-Head in-line on every block, which an exported file
  must match.

    python tests/reference/interop.py

With --check-export FILE, loads a file written by `sfhead export` into the reference model its
metadata names with `load_state_dict(..., strict=True)` and checks every dtype; with
--logits LOGITS (a safetensors file with `x` and the engine's eval-mode `logits`), also runs the
model in evaluation mode on `x` and compares:

    python tests/reference/interop.py --check-export exported.safetensors --logits logits.safetensors
"""

import argparse
import copy
import json
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ctrgcn
import make_fixture
from feeder_reference import ucla_val
from fixture_io import write_safetensors

REPO = ctrgcn.REPO
FIXTURES = REPO / "tests" / "fixtures"
STATE_DICT = FIXTURES / "interop_ucla_state_dict.safetensors"
EVAL = FIXTURES / "interop_ucla_eval.safetensors"
LISTINGS = FIXTURES / "interop_ucla_state_dicts.txt"
FORMAT = "sfhead-interop-fixture-1"

SEED = 3
FRAMES = 16
# Test-view clips of two different actions; the running statistics come from the other six.
CLIPS = ["a01_s01_e00_v03", "a12_s01_e00_v03"]
CALIBRATION_CLIPS = [
    "a01_s01_e00_v01",
    "a01_s01_e00_v02",
    "a02_s09_e04_v02",
    "a02_s09_e04_v03",
    "a04_s01_e00_v01",
    "a11_s01_e00_v03",
]
BATCHES_TRACKED = 25
MAX_STATE_DICT_BYTES = 6_000_000
# The engine's float32 bar (tests/common/parity.rs): 4× PyTorch's envelope plus 2e-5.
ENVELOPE_MULTIPLE, ENVELOPE_FLOOR = 4.0, 2e-5
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def load_clips(names):
    """(N, 3, FRAMES, 20, 1) float32 through CTR-GCN's NW-UCLA test-mode feeder."""
    xs = []
    for name in names:
        with open(REPO / "tests" / "data" / "nw-ucla" / f"{name}.json") as f:
            clip = np.asarray(json.load(f)["skeletons"], dtype=np.float32).astype(np.float64)
        xs.append(ucla_val(clip, bone=False, motion=False, time_steps=FRAMES))
    return np.stack(xs)


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]


def calibrate(model, x, gen):
    """Running statistics of a model in use: the batch statistics of a training-mode forward on
    real clips (BN momentum None takes them whole), then moved by N(0, 0.1·σ) and ×U(0.8, 1.25)
    so that the recorded logits depend on every value."""
    for bn in batch_norms(model):
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x))
        for bn in batch_norms(model):
            bn.momentum = 0.1
            std = bn.running_var.sqrt()
            bn.running_mean.add_(torch.empty_like(std).normal_(0.0, 0.1, generator=gen) * std)
            bn.running_var.mul_(torch.empty_like(std).uniform_(0.8, 1.25, generator=gen))
            bn.num_batches_tracked.fill_(BATCHES_TRACKED)


def eval_logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def relative_error(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


def logits_and_envelope(model, x):
    """Eval-mode logits in float64 and the largest relative L2 error of PyTorch's float32 logits
    over the envelope's runs (x itself and x perturbed by 1e-6 relative)."""
    logits64 = eval_logits(copy.deepcopy(model).double(), torch.from_numpy(x).double())
    runs = make_fixture.envelope_inputs(x, seed=SEED)
    envelope = max(relative_error(eval_logits(model, torch.from_numpy(xj)), logits64) for xj in runs)
    return logits64, envelope


def listing(model):
    """One line per state-dict entry: key, safetensors dtype, shape (`scalar` for 0-d)."""
    lines = []
    for key, t in model.state_dict().items():
        shape = "x".join(map(str, t.shape)) if t.dim() else "scalar"
        lines.append(f"{key:<50} {SAFETENSORS_DTYPES[t.dtype]:<4} {shape}")
    return lines


def make_fixtures():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    model = ctrgcn.build("ucla")
    ctrgcn.initialise(model, gen)
    make_fixture.perturb(model, gen)
    calibrate(model, load_clips(CALIBRATION_CLIPS), gen)
    defaults = ctrgcn.build("ucla").state_dict()
    for key, t in model.state_dict().items():
        if "running_" in key:
            assert not torch.equal(t, defaults[key]), f"{key} keeps its default"

    tmp = STATE_DICT.with_name(STATE_DICT.name + ".tmp")
    save_file(model.state_dict(), tmp)
    tmp.chmod(0o644)
    size = tmp.stat().st_size
    assert size < MAX_STATE_DICT_BYTES, f"{STATE_DICT.name} would be {size:,} bytes"
    tmp.replace(STATE_DICT)
    # What was written is what load_file gives back, and it loads strictly.
    loaded = load_file(STATE_DICT)
    ctrgcn.build("ucla").load_state_dict(loaded, strict=True)
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())

    x = load_clips(CLIPS)
    logits64, envelope = logits_and_envelope(model, x)
    # The running statistics matter: fresh ones give other logits.
    fresh = copy.deepcopy(model).double()
    for bn in batch_norms(fresh):
        bn.reset_running_stats()
    moved = relative_error(eval_logits(fresh, torch.from_numpy(x).double()), logits64)
    assert moved > 0.1, f"running statistics move the logits by only {moved:.2e}"
    tensors = {
        "x": x,
        "logits": logits64.float().numpy(),
        "f32_envelope.logits": np.array(envelope, dtype=np.float32),
    }
    metadata = {
        "format": FORMAT,
        "model": "ctrgcn",
        "dataset": "ucla",
        "clips": ",".join(CLIPS),
        "calibration_clips": ",".join(CALIBRATION_CLIPS),
        "frames": str(FRAMES),
        "seed": str(SEED),
        "reference": "float64",
        "torch_version": torch.__version__,
        "envelope_runs": str(make_fixture.ENVELOPE_RUNS),
        "envelope_perturbation": str(make_fixture.ENVELOPE_PERTURBATION),
    }
    eval_size = write_safetensors(EVAL, tensors, metadata, max_bytes=100_000)

    inline = ctrgcn.build("ucla", sf_head="inline", sf_blocks=range(1, 11), groups=8)
    text = "\n".join(
        [
            "# PyTorch state_dict() listings of tests/reference/ctrgcn.py on NW-UCLA, written by",
            "# tests/reference/interop.py. Columns: key, safetensors dtype, shape (`scalar` for 0-d).",
            "# Each section is one model; an exported file must hold exactly its entries.",
            "",
            f"[ctrgcn] {len(model.state_dict())} entries: ctrgcn.build('ucla')",
            *listing(model),
            "",
            f"[ctrgcn-sfhead-inline] {len(inline.state_dict())} entries: "
            "ctrgcn.build('ucla', sf_head='inline', sf_blocks=range(1, 11), groups=8)",
            *listing(inline),
            "",
        ]
    )
    tmp = LISTINGS.with_name(LISTINGS.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(LISTINGS)

    print(f"logits {logits64.numpy().round(4).tolist()}")
    print(f"float32 envelope {envelope:.2e}; fresh running statistics move the logits by {moved:.2f}")
    print(f"wrote {STATE_DICT.relative_to(REPO)} ({size:,} bytes), {EVAL.relative_to(REPO)} ({eval_size:,} bytes)")
    print(f"wrote {LISTINGS.relative_to(REPO)}")


def check_export(path, logits_path):
    """Strict load of an exported file; with logits_path, the engine's logits against PyTorch's."""
    state_dict = load_file(path)
    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("sfhead", "off") == "inline":
        blocks = [int(b) for b in metadata["sfhead_blocks"].split(",")]
        model = ctrgcn.build(
            metadata["dataset"], sf_head="inline", sf_blocks=blocks, groups=int(metadata["sfhead_groups"])
        )
    else:
        model = ctrgcn.build(metadata["dataset"])
    model.load_state_dict(state_dict, strict=True)
    for key, t in model.state_dict().items():
        assert state_dict[key].dtype == t.dtype, f"{key}: {state_dict[key].dtype}, the model has {t.dtype}"
    print(f"{path}: load_state_dict(strict=True) took all {len(state_dict)} tensors, dtypes equal")
    if logits_path is None:
        return True
    engine = load_file(logits_path)
    x = engine["x"].numpy()
    logits64, envelope = logits_and_envelope(model, x)
    error = relative_error(engine["logits"], logits64)
    bound = ENVELOPE_MULTIPLE * envelope + ENVELOPE_FLOOR
    print(
        f"{logits_path}: engine logits vs PyTorch float64: relative error {error:.2e}, "
        f"bound {bound:.2e} (PyTorch float32 envelope {envelope:.2e})"
    )
    return error <= bound


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-export", metavar="FILE", help="a file written by `sfhead export`")
    parser.add_argument("--logits", metavar="FILE", help="`x` and the engine's eval-mode `logits` on it")
    args = parser.parse_args()
    if args.check_export is None:
        make_fixtures()
        return 0
    return 0 if check_export(args.check_export, args.logits) else 1


if __name__ == "__main__":
    sys.exit(main())
