#!/usr/bin/env bash
# One GPU-machine session: build with CUDA for the H100 (sm_90), run the whole test suite (the CUDA
# parity tests run there instead of skipping), then the benchmarks named on the command line.
# Logs go to $OUT (or ./gpu_logs). Usage: bash bench/gpu_session.sh [tests] [bench-train] [bench-decode]
set -uo pipefail
out="${OUT:-gpu_logs}"
mkdir -p "$out"
export PATH="$PATH:/usr/local/cuda/bin"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DT6_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | head -40; exit 1; }
build-gpu/t6 info | tee "$out/info.txt"
for job in "$@"; do
  case "$job" in
    tests)
      (cd build-gpu && ./t6_tests --duration=true > "$out/tests.log" 2>&1); echo "tests rc=$?"
      grep -E "ERROR|FAILED|CRASHED|test cases|assertions" "$out/tests.log" | head -60 ;;
    bench-train)
      for cfg in configs/bench_cpu.json; do
        build-gpu/t6 bench train --config "$cfg" --device cuda --json | tee -a "$out/bench_train.jsonl"
      done ;;
  esac
done
