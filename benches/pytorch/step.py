#!/usr/bin/env python3
"""Time one PyTorch training step of the model `sfhead bench step` times.

The model is a PyTorch reference from tests/reference/, built and initialised as that script
builds it: CTR-GCN (ctrgcn.py, optionally with SF-Head attached to every block as a training-only
tap or in-line, sf_head.py), ST-GCN (stgcn.py), MS-AAGCN or plain 2s-AGCN (aagcn.py), InfoGCN
(infogcn.py, k = 1), BlockGCN (blockgcn.py), HD-GCN (hdgcn.py, centre of mass 21 on NTU) and
ProtoGCN (protogcn.py, CE + 0.2·CSC with its class memory), these four with their official
initialisation from the seeded global generator. Only
ctrgcn.py can attach SF-Head. One step is what a training loop does:

    forward (train mode) → loss (cross-entropy, InfoGCN's three-term loss, or the SF-Head total
    loss) → backward
    → SGD(lr 0.1, momentum 0.9, Nesterov, weight decay 4e-4) step → zero_grad(set_to_none=True)

and the loss is read back to the host after every step, as `sfhead bench step` does. The input is
random normal from a seeded generator, (N, 3, T, V, M) with V and M from the dataset, labels i % K.

It prints one JSON object (docs/benchmarks.md):

    python3 benches/pytorch/step.py --dataset ntu60 --batch 64 --frames 64 --sfhead tap --device cuda
    python3 benches/pytorch/step.py --model aagcn --dataset ucla --batch 16 --frames 52
"""

import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "reference"

# (V, M, K) per dataset: joints, persons, classes; the same as the engine's Dataset::config.
DATASETS = {"ntu60": (25, 2, 60), "ucla": (20, 1, 10)}
# The backbones of `sfhead bench step --model` and the reference module that builds each; only
# ctrgcn.py can attach SF-Head.
REFERENCES = {
    "ctrgcn": "ctrgcn",
    "stgcn": "stgcn",
    "aagcn": "aagcn",
    "agcn": "aagcn",
    "infogcn": "infogcn",
    "blockgcn": "blockgcn",
    "hdgcn": "hdgcn",
    "protogcn": "protogcn",
}
SFHEAD_MODELS = {"ctrgcn"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=list(REFERENCES), default="ctrgcn", help="the backbone (default: ctrgcn)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="ntu60")
    p.add_argument("--batch", type=int, default=64, help="samples per batch (N)")
    p.add_argument("--frames", type=int, default=64, help="frames per sample (T)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--sfhead", choices=["off", "tap", "inline"], default="off")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and cuDNN (default: strict fp32)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick algorithms by timing")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.batch < 1 or args.frames < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--batch, --frames and --steps must be positive, --warmup non-negative")
    if args.sfhead != "off" and args.model not in SFHEAD_MODELS:
        p.error(
            f"--model {args.model} --sfhead {args.sfhead}: tests/reference/{REFERENCES[args.model]}.py "
            "cannot attach SF-Head (only ctrgcn.py can); use --sfhead off"
        )
    return args


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_precision(torch, tf32):
    """TF32 on or off for both matmul and cuDNN convolutions. PyTorch's own defaults differ (matmul
    off, cuDNN on), so both are set explicitly."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def precision_report(torch):
    """The effective fp32 precision settings, as PyTorch reports them."""
    report = {
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    try:  # PyTorch 2.9 and newer
        report["matmul_fp32_precision"] = torch.backends.cuda.matmul.fp32_precision
        report["cudnn_conv_fp32_precision"] = torch.backends.cudnn.conv.fp32_precision
    except (AttributeError, RuntimeError):
        pass
    return report


def build_model(name, dataset, sfhead_mode, gen):
    """The reference model, initialised from gen as its reference script initialises it."""
    reference = importlib.import_module(REFERENCES[name])
    if name == "ctrgcn":
        model = reference.build(dataset, sf_head=sfhead_mode)
    elif name == "stgcn":
        model = reference.build(dataset)
    elif name == "infogcn":
        import torch

        torch.manual_seed(gen.initial_seed())
        model = reference.build(dataset, k=1)
        model.z_prior = reference.orthogonal_prior(model.num_class, generator=gen)
        return model
    elif name in ("blockgcn", "hdgcn", "protogcn"):
        import torch

        torch.manual_seed(gen.initial_seed())
        return reference.build(dataset)
    else:
        model = reference.build(dataset, plain=name == "agcn")
    reference.initialise(model, gen)
    return model


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(REFERENCE))
    import torch
    import torch.nn.functional as F

    import sf_head

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("step.py: --device cuda but torch.cuda.is_available() is False")
        set_precision(torch, args.tf32)
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
        device = torch.device("cuda")
        device_name = torch.cuda.get_device_name(device)
    else:
        device = torch.device("cpu")
        device_name = cpu_name()

    joints, persons, classes = DATASETS[args.dataset]
    mode = None if args.sfhead == "off" else args.sfhead
    gen = torch.Generator().manual_seed(args.seed)
    model = build_model(args.model, args.dataset, mode, gen).to(device).train()
    parameters = sum(p.numel() for p in model.parameters())

    x = torch.randn(args.batch, 3, args.frames, joints, persons, generator=gen).to(device)
    labels = (torch.arange(args.batch) % classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-4)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if args.model == "infogcn":
        import infogcn

        z_prior = model.z_prior.to(device)
    if args.model == "protogcn":
        import protogcn

    def step():
        if args.model == "infogcn":
            eps = torch.randn(args.batch, infogcn.LATENT, device=device)
            logits, z = model(x, eps)
            loss = infogcn.losses(logits, z, labels, z_prior)["total"]
        elif args.model == "protogcn":
            logits, graph = model(x)
            loss = protogcn.losses(model, logits, graph, labels)["total"]
        elif mode is None:
            loss = F.cross_entropy(model(x), labels)
        else:
            logits, feats = model(x, return_feats=True)
            loss = sf_head.total_loss(logits, labels, feats, persons)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()  # the host reads the loss back, as the engine's step does

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    sync()
    times, losses = [], []
    for _ in range(args.steps):
        sync()
        start = time.perf_counter()
        losses.append(step())
        sync()
        times.append(time.perf_counter() - start)

    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "cuda_max_memory_allocated"
    else:
        # ru_maxrss is in KiB on Linux (bytes on macOS): the whole process, interpreter included.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = rss if sys.platform == "darwin" else rss * 1024
        peak_kind = "cpu_peak_rss"

    ms = statistics.median(times) * 1e3
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "sfhead": args.sfhead,
        "batch": args.batch,
        "frames": args.frames,
        "steps": args.steps,
        "warmup": args.warmup,
        "device": args.device,
        "device_name": device_name,
        "tf32": bool(args.tf32) if device.type == "cuda" else False,
        "cudnn_benchmark": bool(args.cudnn_benchmark) if device.type == "cuda" else False,
        "precision": precision_report(torch) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "parameters": parameters,
        "ms_per_step": ms,
        "ms_per_step_mean": statistics.fmean(times) * 1e3,
        "ms_per_step_min": min(times) * 1e3,
        "samples_per_second": args.batch / (ms / 1e3),
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": peak_kind,
        "last_loss": losses[-1],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
