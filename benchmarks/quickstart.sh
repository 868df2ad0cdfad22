#!/usr/bin/env bash
# Time the README's two Quickstart commands as a new user meets them: a fresh clone, a
# fresh virtual environment (no gatedrnn, no torch) and an empty extension cache.
#
#   benchmarks/quickstart.sh [REPO]        (default: this checkout's committed HEAD)
#
# Prints the seconds of each command and writes benchmarks/results/quickstart.json.
# PIP_NO_CACHE_DIR=1 in the environment measures with an empty pip cache too. The commands
# run as in a new user's shell: without PYTHONDONTWRITEBYTECODE (set in some sandboxes and
# CI images), which would make every Python process compile torch's sources again;
# KEEP_ENVIRONMENT=1 keeps it as it is.
set -euo pipefail
[ "${KEEP_ENVIRONMENT:-0}" = 1 ] || unset PYTHONDONTWRITEBYTECODE
repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/gatedrnn"
python -m venv "$work/venv"
export PATH="$work/venv/bin:$PATH" TORCH_EXTENSIONS_DIR="$work/torch_extensions"
cd "$work/gatedrnn"

# The two commands, read from the README's Quickstart block (the lines after ```bash).
mapfile -t commands < <(awk '/^## Quickstart/ {q = 1} q && /^```bash/ {b = 1; next} b && /^```/ {exit} b {print}' README.md)
[ "${#commands[@]}" -eq 2 ] || { echo "expected two Quickstart commands, found ${#commands[@]}" >&2; exit 1; }

seconds=()
for command in "${commands[@]}"; do
  echo "\$ $command" >&2
  start=$(date +%s.%N)
  bash -c "$command"
  seconds+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
commit="$(git -C "$work/gatedrnn" rev-parse --short HEAD)"
machine="$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) CPUs"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'command 1: %.1f s\ncommand 2: %.1f s\nmachine: %s (load average %s), commit %s\n' \
  "${seconds[0]}" "${seconds[1]}" "$machine" "$load" "$commit"
mkdir -p "$repo/benchmarks/results"
python3 - "$repo/benchmarks/results/quickstart.json" "${commands[0]}" "${seconds[0]}" "${commands[1]}" \
  "${seconds[1]}" "$machine" "$load" "${PIP_NO_CACHE_DIR:-0}" "${PYTHONDONTWRITEBYTECODE:-0}" "$commit" <<'PY'
import json, sys
path, command_1, seconds_1, command_2, seconds_2, machine, load, no_cache, no_bytecode, commit = sys.argv[1:]
record = {"command_1": command_1, "seconds_1": float(seconds_1), "command_2": command_2,
          "seconds_2": float(seconds_2), "machine": machine, "load_average": load, "pip_no_cache": no_cache,
          "pythondontwritebytecode": no_bytecode, "commit": commit}
with open(path, "w") as handle:
    json.dump(record, handle, indent=1)
    handle.write("\n")
PY
