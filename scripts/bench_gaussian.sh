#!/usr/bin/env bash
# Run scripts/bench_gaussian.py with torch-mist as the external reference.
# torch-mist pins numpy<2 and does not declare its pandas dependency, so it gets its own
# virtual environment (default /tmp/torch-mist-venv), never the project's.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TORCH_MIST_VENV:-/tmp/torch-mist-venv}"
python="${PYTHON:-$here/.venv/bin/python}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch_mist" 2>/dev/null; then
    python3 -m venv "$venv"
    torch_version="$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')"
    "$venv/bin/pip" install --quiet "torch==$torch_version"
    "$venv/bin/pip" install --quiet torch-mist pandas
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$python" "$here/scripts/bench_gaussian.py" --torch-mist-python "$venv/bin/python" "$@"
