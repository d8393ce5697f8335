#!/usr/bin/env bash
# Run scripts/compare_bmi.py with bmi (PyPI benchmark-mi, JAX on the CPU) as the reference.
# bmi pins numpy<2, pandas<2 and pydantic<2, so it gets its own virtual environment
# (default /tmp/bmi-venv; BMI_VENV overrides), never the project's.
# benchmark-mi 0.1.3 allows jax<0.5 and equinox<0.11, but pip then picks jax 0.4.38, which
# equinox 0.10.11 cannot import (jax.core.pp_eqn_rules went in jax 0.4.34); jax 0.4.23 in
# turn needs scipy<1.13 (scipy.linalg.tril) and chex 0.1.85. The set pinned below imports.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${BMI_VENV:-/tmp/bmi-venv}"
python="${PYTHON:-$here/.venv/bin/python}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import bmi.estimators" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "benchmark-mi==0.1.3" "jax==0.4.23" "jaxlib==0.4.23" \
        "scipy<1.13" "chex==0.1.85"
    if ! "$venv/bin/python" -c "import bmi.estimators"; then
        echo "compare_bmi.sh: $venv/bin/python cannot import bmi after installing benchmark-mi" >&2
        exit 1
    fi
fi
threads=1
for ((i = 1; i <= $#; i++)); do
    if [ "${!i}" = "--threads" ]; then j=$((i + 1)); threads="${!j}"; fi
done
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"
exec "$python" "$here/scripts/compare_bmi.py" --bmi-python "$venv/bin/python" "$@"
