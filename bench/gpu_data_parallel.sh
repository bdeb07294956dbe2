#!/usr/bin/env bash
# The GPU part of data-parallel training (issue 14), in one device command: build with CUDA and NCCL,
# run the MPI/NCCL test suite as one rank (and as two ranks on the one GPU, which NCCL may refuse:
# it rejects two ranks on the same device), then time `t6 bench train` plainly and under
# `mpirun -np 1` (the NCCL path: gradients all-reduced, ZeRO-1 or not) for the demo model and the
# paper's small T6 in bf16. Logs and a summary (summary.txt) go to $OUT (or ./gpu_logs).
# Open MPI must be installed; when it is not and T6_DEBS names a folder of its Debian packages
# (apt-get download'ed, e.g. carried with the working tree), they are installed from there first.
# Usage: bash bench/gpu_data_parallel.sh
set -uo pipefail
out="${OUT:-gpu_logs}"
mkdir -p "$out"
export PATH="$PATH:/usr/local/cuda/bin"
if ! command -v mpirun > /dev/null && [ -n "${T6_DEBS:-}" ]; then
  dpkg -i "$T6_DEBS"/*.deb > "$out/dpkg.log" 2>&1 || tail -5 "$out/dpkg.log"
fi
command -v mpirun > /dev/null || { echo "mpirun not found: install libopenmpi-dev openmpi-bin (or set T6_DEBS)"; exit 1; }
mpi="mpirun --allow-run-as-root --oversubscribe"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DT6_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/cmake.log" 2>&1 ||
  { tail -30 "$out/cmake.log"; exit 1; }
grep -E "NCCL|MPI" "$out/cmake.log"
cmake --build build-gpu -j "$(nproc)" --target t6 t6_tests > "$out/build.log" 2>&1 ||
  { grep -E "error" "$out/build.log" | head -40; exit 1; }
summary="$out/summary.txt"
: > "$summary"
for ranks in 1 2; do  # the NCCL-path unit tests (communicators on the GPU, data-parallel CUDA training)
  timeout 300 $mpi -np $ranks build-gpu/t6_tests --test-suite=mpi > "$out/mpi_tests_np$ranks.log" 2>&1
  echo "mpi test suite, $ranks rank(s) on the GPU: rc=$?" | tee -a "$summary"
  grep -E "ERROR|FAILED|CRASHED|Duplicate GPU|test cases|assertions" "$out/mpi_tests_np$ranks.log" | head -20 | tee -a "$summary"
done
bench() {  # label, then the t6 bench train arguments; T6_BENCH_RUNS (3) runs each, alternating
  local label="$1"; shift
  for run in $(seq 1 "${T6_BENCH_RUNS:-3}"); do
    echo "$label plain: $(build-gpu/t6 bench train "$@" --json 2>/dev/null)" | tee -a "$summary"
    echo "$label mpirun -np 1: $($mpi -np 1 build-gpu/t6 bench train "$@" --json 2>/dev/null)" | tee -a "$summary"
    echo "$label mpirun -np 1 zero1: $($mpi -np 1 build-gpu/t6 bench train "$@" --set train.zero_stage=1 --json 2>/dev/null)" |
      tee -a "$summary"
  done
}
bench demo --config configs/demo.json --device cuda --set train.dtype=bf16
bench paper_small --config configs/paper_small.json --device cuda --set train.dtype=bf16 --steps 10 --warmup 3
# Two ranks on the one GPU, if NCCL allows it (it may refuse two ranks on one device).
timeout 300 $mpi -np 2 build-gpu/t6 bench train --config configs/demo.json --device cuda --set train.dtype=bf16 --json \
  > "$out/np2.log" 2>&1
echo "demo mpirun -np 2 on one GPU: rc=$? $(tail -3 "$out/np2.log" | tr '\n' ' ')" | tee -a "$summary"
