#!/usr/bin/env bash
# The GPU run of issue 21 (steps, budgets and the results JSON: tools/gpu_check.py's docstring).
#
#   bash tools/gpu_check.sh [--dry-run] [--out DIR] [--notebooks all|NAME,NAME]
#
# On the lent GPU machine, from the repository root, with .gpu-wheels/ carried (make gpu-wheels here):
#   bash tools/gpu_check.sh --out "$OUT"            # about 6 minutes; writes $OUT/gpu_check.json
# Here or in CI, on the CPU (small budgets, nothing installed):
#   bash tools/gpu_check.sh --dry-run --out out/gpu-check
#
# The interpreter: $PYTHON if set; else, for --dry-run, the repository's .venv/bin/python if there;
# else python3 (on the GPU machine, the one that holds torch). Exit: 0 every step ok, 1 a step failed,
# 2 bad arguments.
set -u
cd "$(dirname "$0")/.." || exit 2

usage() { sed -n '4p' "$0" | sed 's/^# *//'; }
dry=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; args+=("$1"); shift ;;
    --out|--notebooks)
      if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
        echo "tools/gpu_check.sh: $1 needs a value" >&2; usage >&2; exit 2
      fi
      args+=("$1" "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tools/gpu_check.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ $dry = 1 ] && [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
fi
py_path=$(command -v "$py") || { echo "tools/gpu_check.sh: no interpreter '$py'" >&2; exit 2; }

# The driver keeps its own budgets; this outer limit only stops a driver that hangs (run: 360 s, dry: 240 s).
limit=$([ $dry = 1 ] && echo 300 || echo 420)
exec timeout --signal=TERM --kill-after=20 "$limit" "$py_path" tools/gpu_check.py --python "$py_path" "${args[@]}"
