#!/usr/bin/env bash
# Fetch into .whl/ the wheels benchmarks/gpu_check.sh carries to a GPU machine that holds only
# torch, numpy, pandas, scikit-learn, scipy, pyyaml, rich and typer: the exact versions of
# benchmarks/gpu_wheels.txt, for CPython 3.11 and 3.12 on x86-64 Linux (pure-Python wheels
# once). Run here, where PyPI is reachable; .whl/ is ignored by git and travels as `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
for version in 3.11 3.12; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl -r benchmarks/gpu_wheels.txt
done
du -sh .whl
