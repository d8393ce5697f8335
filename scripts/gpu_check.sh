#!/usr/bin/env bash
# The GPU check: on a machine with one CUDA GPU, in under 9 minutes and without internet,
#   1. machine    the GPU, its compute capability, torch, CUDA and the driver;
#   2. tests      pytest -m gpu (tests/test_gpu.py: CUDA computes what the CPU computes);
#   3. gaussian   the paper-size Gaussian twelve timed with the command line, separable
#                 critic, then concat, each step compiled (--compile: CUDA graphs);
#   4. bench      scripts/bench_gaussian.py --gpu-only: est-steps/s eager, compiled and in
#                 CUDA graphs, as a fraction of the GPU's fp32 and TF32 matmul rates;
#   5. images     scripts/bench_images.py: ResNet-18's training images/s on the GPU, 32x32
#                 vs 224x224, plain, channels-last and bfloat16 autocast;
#   6. notebooks  every book/*.ipynb under nbval, the device cells picking CUDA through
#                 remi_tutorial.train.default_device() (one pytest per notebook, all at once).
# Each stage runs under `timeout`; one that fails or times out is reported and the next
# runs. Stage limits in seconds, overridable: MACHINE_TIMEOUT=20 TESTS_TIMEOUT=150
# GAUSSIAN_TIMEOUT=120 (each critic) BENCH_TIMEOUT=120 IMAGES_TIMEOUT=60
# NOTEBOOKS_TIMEOUT=240, and TOTAL_TIMEOUT=520 for the whole: a stage gets at most the time
# that is left (a killed stage gets 10 s more), so on a slow first run the last stages are
# cut short or skipped. STAGES names the stages to run, in the order above (default: tests
# gaussian bench images notebooks; the machine line is always printed): e.g. a second call
# for what the first had no time for, STAGES="images notebooks".
#
#   bash scripts/gpu_check.sh      # output in gpu_check_out/, or in $OUT when it is set
#
# Output (8 files at most): summary.txt (machine line and one line per stage), check.log
# (everything), gaussian_{separable,concat}.parquet and their .json (command, wall
# seconds, environment). Exit status: 0 every stage passed; 1 a stage failed, timed out
# or was skipped, or STAGES names an unknown stage; 2 no CUDA GPU (checked first, after
# STAGES, before anything else).
# Python: $PYTHON if set, else the first of python3 and .venv/bin/python whose torch
# sees a CUDA GPU. The package is imported from this checkout (PYTHONPATH).
#
# The lab's GPU machine (the device tool's nvidia-h200) has Python 3.12 and torch 2.11
# but no jupyter, nbval or ipykernel, and no internet: carry them as wheels in .whl/ at the
# repo root (ignored by git). This script installs .whl/*.whl with `pip install --no-index
# --target` and puts them on PYTHONPATH; without nbval the notebook stage is skipped with
# a message. Fetch the wheels here, in the repo root (the rest is on that machine already):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl nbval==0.11.0 \
#     ipykernel ipython ipython_pygments_lexers jupyter_client jupyter_core nbformat \
#     traitlets comm debugpy matplotlib-inline nest-asyncio2 pyzmq tornado platformdirs \
#     fastjsonschema jsonschema jsonschema-specifications referencing rpds-py jedi parso \
#     prompt_toolkit wcwidth stack_data executing asttokens pure_eval pexpect ptyprocess
# then run `bash scripts/gpu_check.sh` there with carry [".whl"] and timeout_s 590.

set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1

STAGES=${STAGES:-tests gaussian bench images notebooks}
for stage in $STAGES; do
    case $stage in
        tests | gaussian | bench | images | notebooks) ;;
        *) echo "STAGES: unknown stage '$stage' (tests gaussian bench images notebooks)" >&2; exit 1 ;;
    esac
done

sees_cuda() {
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1
}

py=
for candidate in ${PYTHON:-python3 .venv/bin/python}; do
    if sees_cuda "$candidate"; then
        py=$candidate
        break
    fi
done
if [[ -z $py ]]; then
    echo "no CUDA GPU: nothing to check" >&2
    exit 2
fi

MACHINE_TIMEOUT=${MACHINE_TIMEOUT:-20}
TESTS_TIMEOUT=${TESTS_TIMEOUT:-150}
GAUSSIAN_TIMEOUT=${GAUSSIAN_TIMEOUT:-120}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
IMAGES_TIMEOUT=${IMAGES_TIMEOUT:-60}
NOTEBOOKS_TIMEOUT=${NOTEBOOKS_TIMEOUT:-240}
TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-520}
deadline=$((SECONDS + TOTAL_TIMEOUT))

out_dir=${OUT:-gpu_check_out}
mkdir -p "$out_dir" && out_dir=$(cd "$out_dir" && pwd) || exit 1
log=$out_dir/check.log
summary=$out_dir/summary.txt
: >"$log"
: >"$summary"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# As `make test`: one torch thread (the notebooks' stored outputs were written so).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 JUPYTER_PLATFORM_DIRS=1
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

say() { echo "$*" | tee -a "$log"; }
wants() { [[ " $STAGES " == *" $1 "* ]]; }
note() { say "$*"; echo "$*" >>"$summary"; }
failures=0

# The limit a stage gets: its own, or what is left of the total if that is less.
limit_for() {
    local own=$1 left=$((deadline - SECONDS))
    echo $((own < left ? own : left))
}

# ended RC LIMIT [SECONDS]: set $status to how a command under `timeout` ended; count failures.
ended() {
    case $1 in
        0) status="ok${3:+ (${3} s)}" ;;
        124 | 137) status="TIMED OUT after ${2} s" ;;
        *) status="FAILED with exit status ${1}${3:+ (${3} s)}" ;;
    esac
    if (($1 != 0)); then failures=$((failures + 1)); fi
}

# Append a stage's output to the log (progress bars' carriage returns as new lines) and
# show its last lines.
show_output() {
    tr '\r' '\n' <"$1" | grep -v '^[[:space:]]*$' >>"$log"
    tr '\r' '\n' <"$1" | grep -v '^[[:space:]]*$' | tail -n "${2:-25}"
}

# run_stage NAME OWN_LIMIT COMMAND...: run it under timeout and report how it ended.
run_stage() {
    local name=$1 limit start rc progress
    limit=$(limit_for "$2")
    shift 2
    if ((limit < 10)); then
        failures=$((failures + 1))
        note "$name: SKIPPED (no time left of TOTAL_TIMEOUT=$TOTAL_TIMEOUT s)"
        return
    fi
    say "=== $name (limit ${limit} s): $*"
    start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$work/stage.out" 2>&1
    rc=$?
    show_output "$work/stage.out"
    progress=$(tr '\r' '\n' <"$work/stage.out" | grep 'it/s' | tail -n 1)
    ended "$rc" "$limit" $((SECONDS - start))
    if grep -q "torch.compile failed" "$work/stage.out"; then
        # train(compile=...) fell back to eager training: the stage did not test what it says
        failures=$((failures + 1))
        status="$status, but FAILED to compile (torch.compile failed: see check.log)"
    fi
    note "$name: $status${progress:+ (last progress: ${progress})}"
}

say "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') in $repo, python $py, output in $out_dir"

# --------------------------------------------------------------------------- 0. wheels
if compgen -G ".whl/*.whl" >/dev/null; then
    say "=== wheels: installing .whl/*.whl into $work/site"
    if timeout "$(limit_for 120)" "$py" -m pip install --quiet --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$work/site" .whl/*.whl 2>&1 | tee -a "$log"; then
        export PYTHONPATH="$work/site:$PYTHONPATH"
    else
        say "wheels: pip install failed; continuing without them"
    fi
fi

# --------------------------------------------------------------------------- 1. machine
cat >"$work/machine.py" <<'PYTHON'
import os, platform, shutil, subprocess
import torch

properties = torch.cuda.get_device_properties(torch.cuda.current_device())
driver = "unknown"
if shutil.which("nvidia-smi"):
    query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
    if query.returncode == 0 and query.stdout.strip():
        driver = query.stdout.strip().splitlines()[0]
if driver == "unknown":
    try:
        import pynvml
        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
    except Exception:
        pass
print(f"machine: {properties.name}, compute capability {properties.major}.{properties.minor}, "
      f"{properties.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} GPU(s); "
      f"driver {driver}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}; Python {platform.python_version()}; "
      f"{os.cpu_count()} CPUs")
PYTHON
if line=$(timeout --kill-after=5 "$(limit_for "$MACHINE_TIMEOUT")" "$py" "$work/machine.py" 2>>"$log"); then
    note "$line"
else
    failures=$((failures + 1))
    note "machine: FAILED to describe the GPU (see check.log)"
fi

# --------------------------------------------------------------------------- 2. tests
if wants tests; then
    # -o addopts= : pyproject's addopts name nbval's options, which a machine without nbval
    # does not know; these tests need none of them.
    run_stage "tests (pytest -m gpu)" "$TESTS_TIMEOUT" \
        "$py" -m pytest -p no:cacheprovider -p no:nbval -o addopts= -m gpu -q -rs tests/test_gpu.py
fi

# --------------------------------------------------------------------------- 3. gaussian
if wants gaussian; then
    for critic in separable concat; do
        run_stage "gaussian $critic (paper size, twelve bounds, seed 0)" "$GAUSSIAN_TIMEOUT" \
            "$py" -m remi_tutorial.benchmarks gaussian --critic "$critic" --estimators all \
            --seeds 0 --device cuda --compile --out "$out_dir/gaussian_$critic.parquet" \
            --results "$work/gaussian_cells"
    done
    seconds=$(grep -hE '^(separable|concat) seed 0: [0-9.]+ s$' "$log" | paste -sd ' ' -)
    note "gaussian wall times (20,000 steps, compiling included): ${seconds:-none}"
fi

# --------------------------------------------------------------------------- 4. bench
if wants bench; then
    run_stage "bench (scripts/bench_gaussian.py --gpu-only)" "$BENCH_TIMEOUT" \
        "$py" scripts/bench_gaussian.py --gpu-only --rounds 1 --gpu-steps 300
fi

# --------------------------------------------------------------------------- 5. images
if wants images; then
    # 200 timed steps: the CPU's default of 20 lasts a fraction of a second on a GPU.
    run_stage "images (scripts/bench_images.py on the GPU)" "$IMAGES_TIMEOUT" \
        "$py" scripts/bench_images.py --device cuda --steps 200 --warmup 20
fi

# --------------------------------------------------------------------------- 6. notebooks
if wants notebooks; then
    notebooks=(book/*.ipynb)
    if ! "$py" -c 'import nbval, ipykernel' >/dev/null 2>&1; then
        failures=$((failures + 1))
        note "notebooks: SKIPPED: nbval or ipykernel cannot be imported (carry their wheels in .whl/, see this script's header)"
    else
        limit=$(limit_for "$NOTEBOOKS_TIMEOUT")
        if ((limit < 10)); then
            failures=$((failures + 1))
            note "notebooks: SKIPPED (no time left of TOTAL_TIMEOUT=$TOTAL_TIMEOUT s)"
        else
            say "=== notebooks (limit ${limit} s each, ${#notebooks[@]} at once): nbval on ${notebooks[*]}"
            pids=()
            for notebook in "${notebooks[@]}"; do
                timeout --kill-after=10 "$limit" "$py" -m pytest -p no:cacheprovider -o addopts= \
                    --nbval --nbval-current-env --nbval-cell-timeout=300 \
                    --nbval-sanitize-with tests/nbval_sanitize.cfg -q "$notebook" \
                    >"$work/$(basename "$notebook").log" 2>&1 &
                pids+=($!)
            done
            for position in "${!notebooks[@]}"; do
                wait "${pids[$position]}"
                rc=$?
                notebook=${notebooks[$position]}
                say "--- $notebook"
                show_output "$work/$(basename "$notebook").log" 15
                result=$(grep -E '(passed|failed|error|skipped).* in [0-9.]+s' \
                    "$work/$(basename "$notebook").log" | tail -n 1 | tr -d '=')
                ended "$rc" "$limit"
                note "notebook $notebook: $status${result:+:$result}"
            done
        fi
    fi
fi

say "=== summary"
cat "$summary"
if ((failures > 0)); then
    echo "gpu_check: $failures stage(s) failed, timed out or were skipped" | tee -a "$log"
    exit 1
fi
echo "gpu_check: every stage passed" | tee -a "$log"
