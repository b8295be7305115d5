#!/usr/bin/env python3
"""Side by side: one training step of a backbone in sfhead and in PyTorch, on this machine.

For each case it runs `target/release/sfhead bench step ... --json` and benches/pytorch/step.py
with the same model, dataset, batch, frames and SF-Head mode, then prints a Markdown table with the ratio
sfhead ms/step ÷ PyTorch ms/step (above 1: sfhead is slower). It builds nothing: run
`cargo build --release` first.

    python3 benches/pytorch/compare.py                      # CPU: lavapipe against PyTorch on the CPU
    python3 benches/pytorch/compare.py --cuda               # NVIDIA: sfhead on Vulkan against PyTorch CUDA fp32, TF32 off and on
    python3 benches/pytorch/compare.py --cases ucla:4:52:tap,stgcn:ntu60:2:64:off --steps 3
    python3 benches/pytorch/compare.py --models ctrgcn,stgcn,aagcn,agcn,infogcn,blockgcn,hdgcn,protogcn   # the default cases of each
    python3 benches/pytorch/compare.py --json               # every row as JSON instead of the table
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEP_PY = Path(__file__).resolve().parent / "step.py"
DEFAULT_BIN = REPO / "target" / "release" / "sfhead"

# dataset:batch:frames:sfhead, for each model; SF-Head only where its PyTorch reference has it.
CPU_CASES = ["ucla:4:52:off", "ucla:4:52:tap", "ntu60:4:64:off", "ntu60:4:64:tap"]
# The training recipes' batches: NW-UCLA 16 × 52 frames, NTU60 64 × 64 frames.
CUDA_CASES = ["ucla:16:52:off", "ucla:16:52:tap", "ntu60:64:64:off", "ntu60:64:64:tap"]
DATASET_NAMES = {"ucla": "NW-UCLA", "ntu60": "NTU60"}
MODEL_NAMES = {
    "ctrgcn": "CTR-GCN",
    "stgcn": "ST-GCN",
    "aagcn": "MS-AAGCN",
    "agcn": "2s-AGCN",
    "infogcn": "InfoGCN",
    "blockgcn": "BlockGCN",
    "hdgcn": "HD-GCN",
    "protogcn": "ProtoGCN",
}
# The PyTorch reference of each model (step.py); only ctrgcn.py can attach SF-Head.
REFERENCES = {
    "ctrgcn": "ctrgcn.py",
    "stgcn": "stgcn.py",
    "aagcn": "aagcn.py",
    "agcn": "aagcn.py",
    "infogcn": "infogcn.py",
    "blockgcn": "blockgcn.py",
    "hdgcn": "hdgcn.py",
    "protogcn": "protogcn.py",
}
SFHEAD_MODELS = {"ctrgcn"}
SFHEAD_FLAGS = {"off": [], "tap": ["--sfhead"], "inline": ["--sfhead-inline"]}
CASE_SYNTAX = "[model:]dataset:batch:frames[:off|tap|inline]"


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def parse_case(text):
    """`[model:]dataset:batch:frames[:sfhead]`; without a model it is CTR-GCN, without a mode off.
    Model and dataset names are disjoint, so a four-part case is read by its first part."""
    parts = text.strip().split(":")
    if parts[0] not in MODEL_NAMES:
        if parts[0] not in DATASET_NAMES:
            raise argparse.ArgumentTypeError(
                f"case {text!r}: {parts[0]!r} is neither a model ({', '.join(MODEL_NAMES)}) "
                f"nor a dataset ({', '.join(DATASET_NAMES)}); expected {CASE_SYNTAX}"
            )
        parts.insert(0, "ctrgcn")
    if len(parts) == 4:
        parts.append("off")
    if len(parts) != 5:
        raise argparse.ArgumentTypeError(f"case {text!r}: expected {CASE_SYNTAX}")
    model, dataset, batch, frames, sfhead = parts
    if dataset not in DATASET_NAMES:
        raise argparse.ArgumentTypeError(f"case {text!r}: dataset must be one of {sorted(DATASET_NAMES)}")
    if sfhead not in SFHEAD_FLAGS:
        raise argparse.ArgumentTypeError(f"case {text!r}: SF-Head mode must be off, tap or inline")
    if sfhead != "off" and model not in SFHEAD_MODELS:
        raise argparse.ArgumentTypeError(
            f"case {text!r}: the PyTorch reference of {MODEL_NAMES[model]} (tests/reference/{REFERENCES[model]}) "
            "cannot attach SF-Head, so there is nothing to compare against; use SF-Head off"
        )
    try:
        batch, frames = int(batch), int(frames)
    except ValueError:
        raise argparse.ArgumentTypeError(f"case {text!r}: batch and frames must be integers") from None
    return {"model": model, "dataset": dataset, "batch": batch, "frames": frames, "sfhead": sfhead}


def default_cases(model, cuda):
    """The default cases of one model: those without SF-Head where its reference lacks it."""
    cases = CUDA_CASES if cuda else CPU_CASES
    return [f"{model}:{c}" for c in cases if model in SFHEAD_MODELS or c.endswith(":off")]


def case_label(case):
    return f"{DATASET_NAMES[case['dataset']]} {case['batch']}×{case['frames']}, SF-Head {case['sfhead']}"


def model_of(result):
    """The model name of a `bench step --json` result, which reports the title (ST-GCN, …); one
    without the field is CTR-GCN's, the only model bench step had before."""
    reported = str(result.get("model", "CTR-GCN"))
    return next((name for name, title in MODEL_NAMES.items() if reported in (name, title)), reported)


def case_key(d):
    return (model_of(d), str(d["dataset"]).lower(), int(d["batch"]), int(d["frames"]), str(d["sfhead"]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cuda", action="store_true", help="PyTorch on CUDA (TF32 off and on) against sfhead on the NVIDIA adapter")
    cases = p.add_mutually_exclusive_group()
    cases.add_argument(
        "--cases", help=f"comma-separated {CASE_SYNTAX}, e.g. ucla:4:52:tap,stgcn:ntu60:4:64 (no model: ctrgcn)"
    )
    cases.add_argument(
        "--models", help=f"comma-separated models ({', '.join(MODEL_NAMES)}): the default cases of each (default: ctrgcn)"
    )
    p.add_argument("--steps", type=int, default=None, help="timed sfhead steps (default: 2 on CPU, 10 with --cuda)")
    p.add_argument(
        "--torch-steps", type=int, default=10, help="timed PyTorch steps (default 10: its steps are cheap, and the median resists a busy machine)"
    )
    p.add_argument("--warmup", type=int, default=2, help="PyTorch warm-up steps (sfhead's bench step always runs 2)")
    p.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: all cores)")
    p.add_argument("--sfhead-bin", type=Path, default=DEFAULT_BIN, help="the sfhead binary (default: target/release/sfhead)")
    p.add_argument("--adapter", default=None, help="SFHEAD_ADAPTER for sfhead (default: nvidia with --cuda, else the environment's)")
    p.add_argument(
        "--sfhead-json",
        type=Path,
        nargs="*",
        default=[],
        help="files holding `sfhead bench step --json` output; a case found in them is not run again",
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds per run (default: 3600 on CPU, 300 with --cuda)")
    p.add_argument("--json", action="store_true", help="print all rows as JSON instead of the Markdown table")
    p.add_argument("--save-json", type=Path, default=None, help="also write all rows as JSON to this file")
    args = p.parse_args(argv)
    try:
        if args.cases:
            texts = args.cases.split(",")
        else:
            models = [m.strip() for m in (args.models or "ctrgcn").split(",") if m.strip()]
            unknown = [m for m in models if m not in MODEL_NAMES]
            if unknown or not models:
                raise argparse.ArgumentTypeError(f"--models {args.models!r}: each must be one of {', '.join(MODEL_NAMES)}")
            texts = [c for m in models for c in default_cases(m, args.cuda)]
        args.case_list = [parse_case(t) for t in texts if t.strip()]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if not args.case_list:
        p.error("no cases to run")
    if args.steps is None:
        args.steps = 10 if args.cuda else 2
    if args.timeout is None:
        args.timeout = 300.0 if args.cuda else 3600.0
    return args


def run_json(cmd, env, timeout):
    """Runs cmd and returns (the last JSON object it printed, None) or (None, an error)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        lines = [l.strip() for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
        # The error itself, not a backtrace after it.
        errors = [l for l in lines if l.startswith(("Error", "error", "thread '", "step.py:")) or "Error:" in l]
        return None, f"exit {proc.returncode}: " + " | ".join(errors[:2] or lines[-3:])
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                out = json.loads(line)
            except json.JSONDecodeError:
                continue
            out["_wall_seconds"] = elapsed
            return out, None
    return None, "no JSON in its output"


def load_sfhead_results(paths):
    found = {}
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as e:
            log(f"compare.py: cannot read {path}: {e}")
            continue
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
                found[case_key(d)] = d
            except (json.JSONDecodeError, KeyError, ValueError, TypeError):
                continue
    return found


def write_atomic(path, text):
    """Writes beside the target and renames, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def mib(b):
    return "–" if b is None else f"{b / 2**20:,.0f} MiB"


def ms(v):
    return "–" if v is None else f"{v:,.1f}"


def rate(v):
    return "–" if v is None else f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def main(argv=None):
    args = parse_args(argv)
    if not args.sfhead_bin.exists():
        log(f"compare.py: {args.sfhead_bin} is missing; build it first with `cargo build --release`")
        return 2

    sfhead_env = dict(os.environ)
    sfhead_env.setdefault("XDG_RUNTIME_DIR", "/tmp")
    adapter = args.adapter or ("nvidia" if args.cuda and "SFHEAD_ADAPTER" not in os.environ else None)
    if adapter:
        sfhead_env["SFHEAD_ADAPTER"] = adapter
    torch_variants = [{"tf32": False}, {"tf32": True}] if args.cuda else [{"tf32": False}]
    device = "cuda" if args.cuda else "cpu"
    reused = load_sfhead_results(args.sfhead_json)

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    for case in args.case_list:
        label = f"{MODEL_NAMES[case['model']]} {case_label(case)}"
        sf = reused.get(case_key(case))
        reused_result = sf is not None
        if reused_result:
            log(f"[{label}] sfhead: reusing a bench step result ({sf.get('milliseconds_per_step', 0):.1f} ms/step)")
            sf_err = None
        else:
            cmd = [str(args.sfhead_bin), "bench", "step", "--model", case["model"], "--dataset", case["dataset"]]
            cmd += ["--batch", str(case["batch"])]
            cmd += ["--frames", str(case["frames"]), "--steps", str(args.steps), *SFHEAD_FLAGS[case["sfhead"]], "--json"]
            log(f"[{label}] sfhead: {' '.join(cmd[1:])}")
            sf, sf_err = run_json(cmd, sfhead_env, args.timeout)
            if sf and model_of(sf) != case["model"]:
                sf, sf_err = None, f"asked for --model {case['model']}, bench step reported model {sf.get('model')!r}"
            log(f"[{label}] sfhead: " + (sf_err or f"{sf['milliseconds_per_step']:.1f} ms/step"))
        for variant in torch_variants:
            cmd = [sys.executable, str(STEP_PY), "--model", case["model"], "--dataset", case["dataset"]]
            cmd += ["--batch", str(case["batch"])]
            cmd += ["--frames", str(case["frames"]), "--steps", str(args.torch_steps), "--warmup", str(args.warmup)]
            cmd += ["--sfhead", case["sfhead"], "--device", device]
            if variant["tf32"]:
                cmd.append("--tf32")
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            log(f"[{label}] PyTorch: {' '.join(cmd[2:])}")
            pt, pt_err = run_json(cmd, dict(os.environ), args.timeout)
            log(f"[{label}] PyTorch: " + (pt_err or f"{pt['ms_per_step']:.1f} ms/step"))
            torch_config = f"{device} fp32" + (", TF32" if variant["tf32"] else "")
            row = {**case, "case": case_label(case), "torch_config": torch_config}
            row["torch"] = pt
            row["torch_error"] = pt_err
            row["sfhead_result"] = sf
            row["sfhead_error"] = sf_err
            row["sfhead_reused"] = reused_result
            t_ms = pt["ms_per_step"] if pt else None
            s_ms = sf["milliseconds_per_step"] if sf else None
            row["torch_ms_per_step"] = t_ms
            row["sfhead_ms_per_step"] = s_ms
            row["ratio"] = s_ms / t_ms if (s_ms is not None and t_ms) else None
            row["torch_samples_per_second"] = pt["samples_per_second"] if pt else None
            row["sfhead_samples_per_second"] = sf["samples_per_second"] if sf else None
            row["torch_peak_memory_bytes"] = pt["peak_memory_bytes"] if pt else None
            row["sfhead_planned_memory_bytes"] = (
                sf["activation_bytes"] + sf["persistent_bytes"] + sf["scratch_bytes"] if sf else None
            )
            row["sfhead_dispatches"] = sf["dispatches"] if sf else None
            row["sfhead_eval_ms_per_step"] = sf.get("eval_milliseconds_per_step") if sf else None
            rows.append(row)

    adapters = sorted({r["sfhead_result"]["adapter"] for r in rows if r["sfhead_result"]})
    torch_devices = sorted({r["torch"]["device_name"] for r in rows if r["torch"]})
    torch_versions = sorted({r["torch"]["torch"] for r in rows if r["torch"]})
    threads = sorted({r["torch"]["threads"] for r in rows if r["torch"]})
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = {
        "date": date,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "sfhead_adapter": adapters,
        "torch_device": torch_devices,
        "torch_version": torch_versions,
        "torch_threads": threads,
        "sfhead_steps": args.steps,
        "torch_steps": args.torch_steps,
        "torch_warmup": args.warmup,
        "load_average_1min": [load_start, os.getloadavg()[0] if hasattr(os, "getloadavg") else None],
    }
    if args.save_json:
        write_atomic(args.save_json, json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    if args.json:
        print(json.dumps({**meta, "rows": rows}, indent=1))
    else:
        print(markdown(rows, meta, cuda=args.cuda))
    return 0 if all(r["torch"] and r["sfhead_result"] for r in rows) else 1


def markdown(rows, meta, cuda):
    out = [
        "| model | case | PyTorch | PyTorch ms/step | sfhead ms/step | ratio (sfhead/PyTorch) "
        "| PyTorch samples/s | sfhead samples/s | PyTorch peak memory¹ | sfhead memory² | sfhead dispatches |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        out.append(
            f"| {MODEL_NAMES[r['model']]} | {r['case']} | {r['torch_config']} | {ms(r['torch_ms_per_step'])} | {ms(r['sfhead_ms_per_step'])} | {ratio} "
            f"| {rate(r['torch_samples_per_second'])} | {rate(r['sfhead_samples_per_second'])} "
            f"| {mib(r['torch_peak_memory_bytes'])} | {mib(r['sfhead_planned_memory_bytes'])} "
            f"| {r['sfhead_dispatches'] if r['sfhead_dispatches'] is not None else '–'} |"
        )
    out.append("")
    peak = (
        "torch.cuda.max_memory_allocated over the run"
        if cuda
        else "peak resident set size of the PyTorch process (interpreter and libraries included)"
    )
    out.append(f"¹ PyTorch: {peak}.")
    out.append(
        "² sfhead: the planner's activation + persistent (parameters, optimiser state) + scratch bytes, "
        "not a measurement of the driver's allocations."
    )
    out.append("")
    out.append(f"- date: {meta['date']}")
    out.append(f"- sfhead adapter: {'; '.join(meta['sfhead_adapter']) or '–'}")
    torch_line = ", ".join(meta["torch_device"]) or "–"
    out.append(
        f"- PyTorch: {', '.join(meta['torch_version']) or '–'} on {torch_line}"
        f" ({'/'.join(str(t) for t in meta['torch_threads']) or '–'} threads)"
    )
    reused = sum(1 for r in rows if r["sfhead_reused"] and r["sfhead_result"])
    sf_steps = f"2 warm-up + {meta['sfhead_steps']} timed (mean)"
    if reused == len(rows):
        sf_steps = "read from --sfhead-json (bench step: 2 warm-up + its own --steps, mean)"
    elif reused:
        sf_steps += f"; {reused} row(s) read from --sfhead-json"
    out.append(f"- steps: sfhead {sf_steps}; PyTorch {meta['torch_warmup']} warm-up + {meta['torch_steps']} timed (median)")
    load = meta["load_average_1min"]
    if load[0] is not None:
        out.append(f"- host: {meta['host']}, {meta['cpu_count']} CPUs, 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end")
    for r in rows:
        for who, err in (("sfhead", r["sfhead_error"]), ("PyTorch", r["torch_error"])):
            if err:
                out.append(f"- {MODEL_NAMES[r['model']]} {r['case']} ({r['torch_config']}): {who} failed: {err}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
