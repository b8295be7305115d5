#!/usr/bin/env bash
# One prepared check of sfhead on an NVIDIA H100/H200 machine, in at most about 8 minutes:
# build, `sfhead info`, the test suite on the NVIDIA adapter, `sfhead bench kernels`,
# `sfhead bench step` at the recipes' batches with SF-Head off/tap/inline, and the side-by-side
# comparison with PyTorch CUDA (benches/pytorch/compare.py --cuda) when torch with CUDA is there.
#
#   benches/gpu-check.sh            # the full check (SFHEAD_ADAPTER defaults to nvidia)
#   benches/gpu-check.sh --quick    # the same steps on tiny shapes, no test suite, any adapter
#
# Options:
#   --quick, --dry-run   tiny shapes, skip the test build and the test suite; SFHEAD_ADAPTER is
#                        left as it is (unset: the best adapter, lavapipe on a CPU-only machine)
#   --out DIR            output directory (default: $OUT if set, else gpu-check-out/ in the repo)
#   --budget SECONDS     wall-clock budget for all steps (default 470 full, 900 quick)
#   --no-build           use target/release/sfhead as it is
#
# Environment: SFHEAD_ADAPTER (default nvidia in the full check), VULKAN_LOADER_DIR (a folder
# holding libvulkan.so.1, or .deb packages of the loader, used when the system has no
# libvulkan.so.1), VK_DRIVER_FILES / VK_ICD_FILENAMES (respected if set),
# GPU_CHECK_IGNORE_SYSTEM_LOADER=1 (look for a shipped loader even if the system has one),
# GPU_CHECK_ICD_DIRS (more folders to search for nvidia_icd*.json, searched first).
#
# Every step runs under its own timeout and writes to the output directory; one failure does not
# stop the rest. The output is eight files (summary.txt first), so that it fits what a remote
# runner copies back. See docs/benchmarks.md.

set -u
set -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1

QUICK=0
BUILD=1
OUTDIR=""
BUDGET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick | --dry-run) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUTDIR="$2"; shift ;;
        --out=*) OUTDIR="${1#--out=}" ;;
        --budget) BUDGET="$2"; shift ;;
        --budget=*) BUDGET="${1#--budget=}" ;;
        -h | --help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$OUTDIR" ]; then
    OUTDIR="${OUT:-$REPO/gpu-check-out}"
fi
if [ -z "$BUDGET" ]; then
    if [ "$QUICK" = 1 ]; then BUDGET=900; else BUDGET=470; fi
fi
mkdir -p "$OUTDIR" || exit 1
OUTDIR="$(cd "$OUTDIR" && pwd)"

# The eight output files.
SUMMARY="$OUTDIR/summary.txt"
ENVF="$OUTDIR/env.txt"
BUILDLOG="$OUTDIR/build.log"
TESTLOG="$OUTDIR/test.log"
BENCHLOG="$OUTDIR/bench.log"
KERNELS="$OUTDIR/kernels.jsonl"
STEPS="$OUTDIR/steps.jsonl"
COMPARE="$OUTDIR/compare.json"
: >"$SUMMARY"; : >"$ENVF"; : >"$BUILDLOG"; : >"$TESTLOG"; : >"$BENCHLOG"; : >"$KERNELS"; : >"$STEPS"; : >"$COMPARE"

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export PYTHONUNBUFFERED=1
export CARGO_TERM_COLOR=never
if [ "$QUICK" = 0 ]; then
    export SFHEAD_ADAPTER="${SFHEAD_ADAPTER:-nvidia}"
fi
BIN="$REPO/target/release/sfhead"
START=$SECONDS
STATUS_LINES=()

say() { echo "$*" | tee -a "$ENVF"; }
elapsed() { echo $((SECONDS - START)); }

# run_step NAME CAP RESERVE STDOUT STDERR CMD...: runs CMD under `timeout`, for at most CAP seconds
# and never into the last RESERVE seconds of the budget (kept for the steps after it).
run_step() {
    local name="$1" cap="$2" reserve="$3" out="$4" err="$5"
    shift 5
    local left=$((BUDGET - (SECONDS - START) - reserve))
    local limit=$cap
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        STATUS_LINES+=("$(printf '%-34s %-22s %5s s' "$name" "skipped (no time left)" 0)")
        echo "== $name: skipped, no time left in the ${BUDGET} s budget" | tee -a "$err" >&2
        return 124
    fi
    echo "== $name (limit ${limit} s, $(elapsed) s into the check): $*" | tee -a "$err" >&2
    local t0=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" >>"$out" 2>>"$err"
    rc=$?
    local took=$((SECONDS - t0)) state
    case $rc in
        0) state="ok" ;;
        124 | 137) state="TIMEOUT after ${limit} s" ;;
        *) state="FAILED (exit $rc)" ;;
    esac
    echo "== $name: $state in ${took} s" | tee -a "$err" >&2
    STATUS_LINES+=("$(printf '%-34s %-22s %5s s' "$name" "$state" "$took")")
    return $rc
}

skip_step() {
    STATUS_LINES+=("$(printf '%-34s %-22s %5s s' "$1" "skipped: $2" 0)")
    echo "== $1: skipped: $2" >&2
}

# ---------------------------------------------------------------------------------------------
# Environment: the Vulkan loader, the NVIDIA ICD, the toolchain.

say "# gpu-check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname) ($(uname -srm))"
say "repo: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git')$(git -C "$REPO" status --porcelain 2>/dev/null | grep -q . && echo ', with local changes'))"
say "mode: $([ "$QUICK" = 1 ] && echo quick || echo full); budget ${BUDGET} s; output $OUTDIR"
say "SFHEAD_ADAPTER=${SFHEAD_ADAPTER:-<unset>}"
if command -v nvidia-smi >/dev/null 2>&1; then
    say "nvidia-smi: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4 | tr '\n' ';')"
else
    say "nvidia-smi: not found"
fi

system_loader() {
    if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
        ldconfig -p | grep 'libvulkan\.so\.1 ' | head -1 | sed 's/.*=> //'
        return 0
    fi
    local d
    for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
        [ -e "$d/libvulkan.so.1" ] && { echo "$d/libvulkan.so.1"; return 0; }
    done
    return 1
}

# Prints the folder holding libvulkan.so.1 from a shipped loader folder: the library itself, or
# .deb packages (unpacked into /tmp, never into /).
shipped_loader() {
    local dir="$1" found
    found="$(find "$dir" -maxdepth 6 -name 'libvulkan.so.1*' \( -type f -o -type l \) 2>/dev/null | sort | head -1)"
    if [ -z "$found" ] && ls "$dir"/*.deb >/dev/null 2>&1; then
        local unpack="/tmp/gpu-check-vulkan-loader"
        rm -rf "$unpack"; mkdir -p "$unpack"
        local deb
        for deb in "$dir"/*.deb; do
            if command -v dpkg-deb >/dev/null 2>&1; then
                dpkg-deb -x "$deb" "$unpack" 2>>"$ENVF"
            else
                (cd "$unpack" && ar p "$deb" "$(ar t "$deb" | grep '^data\.tar')" | tar -x -f - 2>>"$ENVF")
            fi
        done
        found="$(find "$unpack" -name 'libvulkan.so.1*' \( -type f -o -type l \) 2>/dev/null | sort | head -1)"
    fi
    [ -n "$found" ] || return 1
    dirname "$found"
}

LOADER=""
if [ "${GPU_CHECK_IGNORE_SYSTEM_LOADER:-0}" != 1 ] && LOADER="$(system_loader)"; then
    say "Vulkan loader: system $LOADER"
else
    [ "${GPU_CHECK_IGNORE_SYSTEM_LOADER:-0}" = 1 ] && say "Vulkan loader: system loader ignored (GPU_CHECK_IGNORE_SYSTEM_LOADER=1)" \
        || say "Vulkan loader: no libvulkan.so.1 on the system; looking for a shipped one"
    LOADER=""
    for cand in "${VULKAN_LOADER_DIR:-}" "$REPO/vulkan-loader" "$REPO/../vulkan-loader" "$REPO/.gl"; do
        [ -n "$cand" ] && [ -d "$cand" ] || continue
        if libdir="$(shipped_loader "$cand")"; then
            export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            LOADER="$libdir/libvulkan.so.1"
            say "Vulkan loader: shipped, from $cand -> $LOADER (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
            break
        else
            say "Vulkan loader: nothing usable in $cand"
        fi
    done
    [ -n "$LOADER" ] || say "Vulkan loader: NOT FOUND (set VULKAN_LOADER_DIR to a folder with libvulkan.so.1 or the libvulkan1 .deb); Vulkan steps will fail"
fi

if [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    say "Vulkan ICD: from the environment: VK_DRIVER_FILES=${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}"
else
    ICD=""
    for d in ${GPU_CHECK_ICD_DIRS:-} /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/icd.d; do
        for f in "$d"/nvidia_icd*.json; do
            [ -f "$f" ] && { ICD="$f"; break 2; }
        done
    done
    if [ -z "$ICD" ]; then
        say "Vulkan ICD: no nvidia_icd.json found; the loader's default drivers are used"
    else
        case "$ICD" in
            /usr/share/vulkan/icd.d/* | /etc/vulkan/icd.d/* | /usr/local/share/vulkan/icd.d/*)
                say "Vulkan ICD: $ICD (a standard location, found by the loader itself)" ;;
            *)
                export VK_DRIVER_FILES="$ICD" VK_ICD_FILENAMES="$ICD"
                say "Vulkan ICD: $ICD (exported as VK_DRIVER_FILES and VK_ICD_FILENAMES)" ;;
        esac
        lib="$(sed -n 's/.*"library_path"[^"]*"\([^"]*\)".*/\1/p' "$ICD" | head -1)"
        if [ -n "$lib" ]; then
            if [ "${lib#/}" != "$lib" ]; then
                [ -e "$lib" ] && say "Vulkan ICD library: $lib" || say "Vulkan ICD library: $lib MISSING"
            elif ldconfig -p 2>/dev/null | grep -q "$lib"; then
                say "Vulkan ICD library: $lib (in the linker cache)"
            else
                icd_lib=""
                for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
                    if [ -e "$d/$lib" ]; then
                        icd_lib="$d/$lib"
                        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
                        say "Vulkan ICD library: $icd_lib (added $d to LD_LIBRARY_PATH)"
                        break
                    fi
                done
                [ -n "$icd_lib" ] || say "Vulkan ICD library: $lib NOT FOUND in the linker cache or the usual folders"
            fi
        fi
    fi
fi
say "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-<unset>}"

HAVE_CARGO=0
if command -v cargo >/dev/null 2>&1; then
    HAVE_CARGO=1
    say "toolchain: $(cargo --version 2>&1); $(rustc --version 2>&1)"
else
    say "toolchain: cargo not found: no build and no test suite; using a prebuilt target/release/sfhead if present"
fi

PY=""
TORCH_CUDA=0
if command -v python3 >/dev/null 2>&1; then
    PY=python3
    torch_line="$(python3 -c 'import torch; print(torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1 | tail -1)"
    say "python3: $(python3 --version 2>&1); torch: $torch_line"
    case "$torch_line" in *"cuda True"*) TORCH_CUDA=1 ;; esac
else
    say "python3: not found"
fi

# ---------------------------------------------------------------------------------------------
# Build.

if [ "$BUILD" = 1 ] && [ "$HAVE_CARGO" = 1 ]; then
    # Keep at least 3 minutes for everything after the build.
    run_step "cargo build --release" 240 180 "$BUILDLOG" "$BUILDLOG" cargo build --release --locked
    if [ "$QUICK" = 0 ]; then
        run_step "cargo test --no-run (build tests)" 200 150 "$BUILDLOG" "$BUILDLOG" cargo test --release --locked --no-run
    else
        skip_step "cargo test --no-run (build tests)" "quick mode"
    fi
else
    skip_step "cargo build --release" "$([ "$BUILD" = 0 ] && echo '--no-build' || echo 'cargo not found')"
    skip_step "cargo test --no-run (build tests)" "$([ "$BUILD" = 0 ] && echo '--no-build' || echo 'cargo not found')"
fi
if [ ! -x "$BIN" ]; then
    say "sfhead binary: $BIN MISSING (run cargo build --release, or bring a prebuilt one); the sfhead steps will fail"
else
    say "sfhead binary: $BIN ($(stat -c '%s bytes, %y' "$BIN" 2>/dev/null))"
fi

# ---------------------------------------------------------------------------------------------
# Adapter, tests, benchmarks.

echo "## sfhead info" >>"$ENVF"
run_step "sfhead info" 30 120 "$ENVF" "$ENVF" "$BIN" info

if [ "$QUICK" = 1 ]; then
    skip_step "cargo test --release" "quick mode"
elif [ "$HAVE_CARGO" = 0 ]; then
    skip_step "cargo test --release" "cargo not found"
else
    # Leave about 3.5 minutes for the benchmarks.
    run_step "cargo test --release" 240 220 "$TESTLOG" "$TESTLOG" cargo test --release --locked
fi

if [ "$QUICK" = 1 ]; then
    run_step "bench kernels" 120 180 "$KERNELS" "$BENCHLOG" "$BIN" bench kernels --batch 1 --repeats 1 --json
    STEP_CASES="ntu60:1:8 ucla:1:8"
    STEP_N=1
else
    run_step "bench kernels" 45 180 "$KERNELS" "$BENCHLOG" "$BIN" bench kernels --json
    STEP_CASES="ntu60:64:64 ucla:16:52"
    STEP_N=10
fi

for c in $STEP_CASES; do
    IFS=: read -r ds b t <<<"$c"
    for mode in off tap inline; do
        flag=""
        [ "$mode" = tap ] && flag="--sfhead"
        [ "$mode" = inline ] && flag="--sfhead-inline"
        if [ "$QUICK" = 1 ]; then cap=120; else cap=60; fi
        run_step "bench step $ds ${b}x$t $mode" "$cap" 100 "$STEPS" "$BENCHLOG" \
            "$BIN" bench step --dataset "$ds" --batch "$b" --frames "$t" --steps "$STEP_N" $flag --json
    done
done

COMPARE_MD=""
if [ -z "$PY" ]; then
    skip_step "compare.py" "python3 not found"
elif [ "$QUICK" = 0 ] && [ "$TORCH_CUDA" = 0 ]; then
    skip_step "compare.py --cuda" "torch with CUDA not importable"
else
    COMPARE_MD="$(mktemp /tmp/gpu-check-compare.XXXXXX)"
    if [ "$QUICK" = 1 ]; then
        # Tiny cases; CUDA if torch has it, else PyTorch on the CPU. sfhead's side is reused from
        # steps.jsonl.
        cuda_flag=""
        [ "$TORCH_CUDA" = 1 ] && cuda_flag="--cuda"
        run_step "compare.py (quick)" 300 0 "$COMPARE_MD" "$BENCHLOG" \
            "$PY" benches/pytorch/compare.py $cuda_flag --cases ucla:1:8:off,ucla:1:8:tap --steps 1 \
            --sfhead-json "$STEPS" --save-json "$COMPARE"
    else
        run_step "compare.py --cuda" 180 0 "$COMPARE_MD" "$BENCHLOG" \
            "$PY" benches/pytorch/compare.py --cuda --sfhead-json "$STEPS" --save-json "$COMPARE"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Summary.

{
    echo "# gpu-check summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(elapsed) s of ${BUDGET} s)"
    echo
    grep -E '^(mode|SFHEAD_ADAPTER|nvidia-smi|Vulkan|toolchain|python3|sfhead binary)' "$ENVF"
    grep -E '^using \[' "$ENVF" | sed 's/^/sfhead /'
    echo
    echo "## steps"
    printf '%s\n' "${STATUS_LINES[@]}"
    errors="$(grep -h -E '^(Error|error)(:|\[)' "$ENVF" "$BUILDLOG" "$BENCHLOG" 2>/dev/null | sort | uniq -c | sort -rn | head -8)"
    if [ -n "$errors" ]; then
        echo
        echo "## errors (count, message)"
        echo "$errors"
    fi
    if grep -qE '^test result:' "$TESTLOG"; then
        echo
        echo "## tests"
        grep -E '^test result:|^     Running|FAILED|panicked' "$TESTLOG" | grep -vE 'test result: ok\. 0 passed' | head -80
    fi
    if [ -n "$PY" ] && { [ -s "$STEPS" ] || [ -s "$KERNELS" ]; }; then
        echo
        "$PY" - "$STEPS" "$KERNELS" <<'PYEOF'
import json, sys
def rows(path):
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out
steps, kernels = rows(sys.argv[1]), rows(sys.argv[2])
if steps:
    print("## bench step")
    print(f"adapter: {steps[0].get('adapter')}")
    print("| dataset | batch × frames | SF-Head | ms/step | samples/s | eval ms | dispatches | planned memory |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for s in steps:
        mem = (s["activation_bytes"] + s["persistent_bytes"] + s["scratch_bytes"]) / 2**20
        print(f"| {s['dataset']} | {s['batch']} × {s['frames']} | {s['sfhead']} | {s['milliseconds_per_step']:.1f} "
              f"| {s['samples_per_second']:.1f} | {s['eval_milliseconds_per_step']:.1f} | {s['dispatches']} | {mem:.0f} MiB |")
if kernels:
    print()
    print("## bench kernels")
    keys = [k for k in kernels[0] if isinstance(kernels[0][k], (int, float, str))]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for k in kernels:
        print("| " + " | ".join(f"{k.get(x):.4g}" if isinstance(k.get(x), float) else str(k.get(x)) for x in keys) + " |")
PYEOF
    fi
    if [ -n "$COMPARE_MD" ] && [ -s "$COMPARE_MD" ]; then
        echo
        echo "## sfhead against PyTorch"
        cat "$COMPARE_MD"
    fi
    echo
    echo "files: $(cd "$OUTDIR" && ls | tr '\n' ' ')"
} >"$SUMMARY" 2>&1
[ -n "$COMPARE_MD" ] && rm -f "$COMPARE_MD"
cat "$SUMMARY"
# Exit 0 when every step that ran succeeded.
! printf '%s\n' "${STATUS_LINES[@]}" | grep -qE 'FAILED|TIMEOUT'
