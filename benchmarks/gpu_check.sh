#!/usr/bin/env bash
# The one prepared GPU check: the GPU tests, then a small GPU benchmark (planned synchronous and
# asynchronous movement against CUDA unified memory at two budgets), in under 5 minutes on an
# H100 or H200. See benchmarks/gpu.md for how a session runs it and what it records.
#
#   bash benchmarks/gpu_check.sh --prepare   # HERE, with network: wheels into out/gpu-wheels
#   bash benchmarks/gpu_check.sh             # THERE, on the GPU machine, from the repo root
#
# The GPU machine has no network and its python3 (3.12) already holds cupy-cuda13x, numpy, onnx,
# pyarrow, pandas, pytest, pytest-timeout and hypothesis; what the project needs beyond that
# travels as wheels (out/gpu-wheels, about 30 MB: jsonschema and its three dependencies,
# ortools, protobuf, immutabledict), installed into /tmp and put first on PYTHONPATH with the
# project's own source folders (pure Python, nothing to build). Our .venv cannot travel (Python
# 3.11, 900 MB) and a cupy wheel is too large to carry (136 MB against a 64 MiB limit).
#
# Safety: every test and the benchmark ask for at most a few hundred MB of managed memory, and
# autotm-execute refuses any managed pool larger than the free device memory before allocating.
#
# Environment: GPU_PYTHON (default python3), GPU_CHECK_SECONDS (default 280, the whole check),
# OUT (where results go; the device tool sets it; default out/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=out/gpu-wheels
SITE=/tmp/autotm-gpu-site
PY=${GPU_PYTHON:-python3}
RESULTS=${OUT:-out/gpu-check}
TOTAL=${GPU_CHECK_SECONDS:-280}
# The versions uv.lock pins, for CPython 3.12 on x86-64 Linux.
PINS=(
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  ortools==9.15.6755 protobuf==6.33.6 immutabledict==4.3.1
)

prepare() {
  mkdir -p "$WHEELS"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$WHEELS" "${PINS[@]}"
  du -sh "$WHEELS"
  echo "gpu_check: wheels ready; carry out/gpu-wheels with the run (see benchmarks/gpu.md)"
}

if [[ "${1:-}" == "--prepare" ]]; then
  prepare
  exit 0
fi

started=$(date +%s)
left() { echo $((TOTAL - ($(date +%s) - started))); }

check() {
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "gpu_check: no wheels in $WHEELS: run 'bash benchmarks/gpu_check.sh --prepare' first and carry out/gpu-wheels"
    return 2
  fi
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
  src="$PWD/schemas/src:$PWD/tools/graph/src:$PWD/tools/execute/src:$PWD/tools/profile/src"
  export PYTHONPATH="$SITE:$src:$PWD/tools/optimize/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1

  echo "== gpu_check: set-up"
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv; fi
  if ! "$PY" -c "import cupy, ortools, jsonschema, onnx, pyarrow" 2>"$RESULTS/import_error.txt"; then
    echo "gpu_check: $PY cannot import what the check needs: $(tail -n 1 "$RESULTS/import_error.txt")"
    return 2
  fi
  "$PY" - <<'EOF'
import platform, sys
import numpy, cupy, ortools, jsonschema, onnx, pyarrow
r = cupy.cuda.runtime
if r.getDeviceCount() < 1:
    sys.exit("gpu_check: no CUDA device")
p = r.getDeviceProperties(0)
free, total = r.memGetInfo()
print(f"python {platform.python_version()} numpy {numpy.__version__} cupy {cupy.__version__} "
      f"(CUDA runtime {r.runtimeGetVersion()}, driver {r.driverGetVersion()}) onnx {onnx.__version__} "
      f"pyarrow {pyarrow.__version__} ortools {ortools.__version__}")
print(f"device {p['name'].decode() if isinstance(p['name'], bytes) else p['name']}: "
      f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free, compute capability {p['major']}.{p['minor']}, "
      f"concurrent managed access {r.deviceGetAttribute(89, 0)}")
EOF

  echo "== gpu_check: GPU tests (pytest -m gpu), $(left) s left"
  status=0
  limit=$(( $(left) - 90 )); limit=$(( limit > 150 ? 150 : (limit < 30 ? 30 : limit) ))
  timeout "$limit" "$PY" -m pytest -m gpu tests/execute tests/profile \
    -q -p no:cacheprovider --junitxml="$RESULTS/pytest.xml" || status=$?
  echo "gpu_check: pytest exit $status"

  echo "== gpu_check: benchmark, $(left) s left"
  bench=0
  deadline=$(( $(left) - 15 )); deadline=$(( deadline < 30 ? 30 : deadline ))
  "$PY" benchmarks/gpu_bench.py --out out/gpu-bench --deadline "$deadline" || bench=$?
  cp out/gpu-bench/results.json "$RESULTS/bench_results.json" 2>/dev/null || true
  tar -czf "$RESULTS/bench_records.tar.gz" -C out/gpu-bench \
    $(cd out/gpu-bench && ls -d runs plans profile/*.json 2>/dev/null) 2>/dev/null || true
  echo "gpu_check: benchmark exit $bench; $(( $(date +%s) - started )) s in all"
  return $(( status != 0 ? status : bench ))
}

mkdir -p "$RESULTS"
set +e
check 2>&1 | tee "$RESULTS/gpu_check.log"
exit "${PIPESTATUS[0]}"
