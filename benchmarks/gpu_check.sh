#!/usr/bin/env bash
# Everything a session with a CUDA GPU should run, in one call (the CuPy backend is never
# exercised on CI, which has no GPU): the CuPy tests, the CuPy benchmark against NumPy and
# Numba (with its built-in host-noise parity check), and X4, whose CuPy rows run only when a
# GPU is usable. Runs from a source checkout without installing (PYTHONPATH), so it works on a
# machine that has the dependencies but no network.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]      # logs and the X4 verdict land in OUTDIR
#   BENCH_ARGS="--min-time 0.2" bash ...       # the full benchmark (d = 1000 too: > 5 min)
set -u -o pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-results}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg HYPOTHESIS_PROFILE=ci
nvidia-smi -L || true
python3 -c "import sys, numpy, scipy, numba, cupy; print(sys.version.split()[0], 'numpy',
numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__, 'cupy',
cupy.__version__)" 2>&1 | tee "$out/versions.txt"
status=0
echo "== CuPy tests"
timeout 300 python3 -m pytest -q -p no:cacheprovider -m cupy tests/test_estimators.py \
    tests/test_sid.py 2>&1 | tee "$out/pytest_cupy.log" || status=1
echo "== CuPy benchmark"
timeout 300 python3 benchmarks/bench_cupy.py ${BENCH_ARGS:---quick} 2>&1 \
    | tee "$out/bench_cupy.md" || status=1
echo "== X4 (NumPy <-> Numba <-> CuPy parity)"
timeout 400 python3 -m refbilevel check X4 --out "$out/x4" --no-progress 2>&1 \
    | tee "$out/x4.log" || status=1
exit $status
