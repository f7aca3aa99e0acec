#!/usr/bin/env bash
# Build the abi3 wheel with maturin, install it into a venv this script creates, and run
# pytest, the stub check (mypy.stubtest against the built module) and the example's smoke run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv="$root/target/py-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-dev.txt"
rm -rf "$root/target/wheels"
(cd "$here" && "$venv/bin/maturin" build --release --quiet --out "$root/target/wheels")
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$root"/target/wheels/target_allocator-*.whl
cd "$root"
"$venv/bin/python" -m pytest -q allocator-py/tests
echo "== ruff"
"$venv/bin/ruff" check --config allocator-py/pyproject.toml allocator-py/python allocator-py/tests examples/python
echo "== stubtest"
"$venv/bin/python" -m mypy.stubtest target_allocator._native --mypy-config-file allocator-py/mypy.ini
"$venv/bin/python" -m mypy --config-file allocator-py/mypy.ini allocator-py/python/target_allocator examples/python
echo "== capacity planning example (smoke size)"
out="$root/target/capacity-planning"
"$venv/bin/python" examples/python/capacity_planning.py --targets 20000 --out "$out"
for f in loads.png moves.png summary.md; do
  test -s "$out/$f" || { echo "missing $out/$f"; exit 1; }
done
echo "== strategy comparison example (smoke size)"
"$venv/bin/python" examples/python/compare_strategies.py --targets 20000 --collectors 20 --out "$out/strategy-loads.png"
test -s "$out/strategy-loads.png" || { echo "missing $out/strategy-loads.png"; exit 1; }
