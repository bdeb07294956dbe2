#!/usr/bin/env bash
# One GPU-machine session: build with CUDA for the H100 (sm_90), run the whole test suite (the CUDA
# parity tests run there instead of skipping), then the benchmarks named on the command line.
# Logs go to $OUT (or ./gpu_logs). Usage: bash bench/gpu_session.sh [tests] [bench-train] [bench-mid] [bench-paper] [generate] [profile] [decode] [pytorch]
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
    bench-train)  # the demo model, fp32 and tf32
      for dtype in fp32 tf32 bf16; do
        build-gpu/t6 bench train --config configs/bench_cpu.json --device cuda --set train.dtype=$dtype --json |
          tee -a "$out/bench_train.jsonl"
      done ;;
    bench-mid)  # a mid-size T6 (configs/bench_mid.json: V=50304, L=6, d=512, B=16, T=512) in fp32, beside PyTorch
      build-gpu/t6 bench train --config configs/bench_mid.json --device cuda --json | tee -a "$out/bench_train.jsonl"
      python3 bench/pytorch_t6.py --layers 6 --embd 512 --heads 16 --head-dim 32 --batch 16 --seq 512 --dtype fp32 |
        tee -a "$out/pytorch.jsonl" ;;
    bench-paper)  # the paper's small T6, bf16 mixed precision, at B=16 and smaller batches
      for batch in 16 8; do
        build-gpu/t6 bench train --config configs/paper_small.json --device cuda --set train.dtype=bf16 \
          --set train.batch_size=$batch --set train.grad_accum=1 --steps 5 --warmup 2 --json 2>&1 |
          tee -a "$out/bench_train.jsonl"
      done ;;
    generate)  # train the demo model briefly on the GPU, then generate from it on the GPU
      rm -rf runs/gpu_demo data/gpu_demo
      find /usr/share -name '*.txt' -size +20k 2>/dev/null | head -40 > "$out/corpus_files.txt"
      build-gpu/t6 prepare --input $(cat "$out/corpus_files.txt") --tokenizer byte --out data/gpu_demo > "$out/generate.log" 2>&1
      build-gpu/t6 train --config configs/demo.json --device cuda --set train.steps=300 --set optim.decay_steps=300 \
        --set train.out_dir='"runs/gpu_demo"' --set data.train='"data/gpu_demo/train_*.bin"' \
        --set data.val='"data/gpu_demo/val_*.bin"' >> "$out/generate.log" 2>&1; echo "train rc=$?"
      build-gpu/t6 generate --checkpoint runs/gpu_demo/step_000300.safetensors --device cuda --prompt "The " \
        --max-new-tokens 100 --seed 1 2>&1 | tee -a "$out/generate.log" | tail -12 ;;
    profile)  # GPU time per kernel of the paper's small T6 training step (bf16), from t6's own kernel timer
      build-gpu/t6 bench train --config configs/paper_small.json --device cuda --set train.dtype=bf16 \
        --set train.batch_size=${T6_PROFILE_BATCH:-16} --set train.grad_accum=1 --steps 3 --warmup 2 --profile 2>&1 |
        tee "$out/profile.txt" | head -45 ;;
    decode)  # decode tokens/s of the paper's small T6 at batch 1 and 8 after 1K and 8K tokens, beside PyTorch's
      build-gpu/bench_decode --config configs/paper_small.json --device cuda --contexts 1024,8192 --batches 1,8 \
        --new-tokens 64 2>&1 | tee "$out/decode.txt"
      for ctx in 1024 8192; do for batch in 1 8; do
        python3 bench/pytorch_t6.py --decode-context $ctx --batch $batch --new-tokens 36 | tee -a "$out/pytorch_decode.jsonl"
      done; done ;;
    pytorch)  # the yardstick: a plain PyTorch T6 from the spec, same shapes
      python3 bench/pytorch_t6.py --vocab 256 --layers 4 --embd 256 --heads 8 --head-dim 32 --batch 16 --seq 128 \
        --dtype fp32 | tee -a "$out/pytorch.jsonl"
      python3 bench/pytorch_t6.py --dtype bf16 | tee -a "$out/pytorch.jsonl"
      python3 bench/pytorch_t6.py --dtype tf32 | tee -a "$out/pytorch.jsonl" ;;
  esac
done
