#!/usr/bin/env bash
# The built-in demo: on a fresh Debian 12 machine (as root) installs what is missing, builds t6,
# turns Debian's fortune-cookie files into byte-level token shards, trains the small T6 of
# configs/demo.json on the CPU (about six minutes on 2 cores), reports the validation loss in bits per
# byte next to the unigram baseline of the same data, and prints samples.
# Usage: bash scripts/demo.sh [extra t6 train arguments, e.g. --set train.steps=100]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install_deps.sh
for p in fortunes fortunes-min; do
  dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target t6

# Fortune files hold quotes separated by lines of "%"; the .dat/.u8 files beside them are indexes.
inputs=$(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
rm -rf data/fortunes
build/t6 prepare --input $inputs --tokenizer byte --doc-separator % --val-fraction 0.05 --out data/fortunes

rm -rf runs/demo
build/t6 train --config configs/demo.json "$@"
checkpoint=$(ls runs/demo/step_*.safetensors | grep -v state | sort | tail -n 1)

echo
echo "== validation loss (bits per byte) =="
build/t6 eval --checkpoint "$checkpoint" --data 'data/fortunes/val_*.bin' --batch-size 16 --seq-len 128
echo
echo "== samples =="
for prompt in "The " "Q: What is " "A programmer "; do
  build/t6 generate --checkpoint "$checkpoint" --prompt "$prompt" --max-new-tokens 200 --temperature 0.8 --top-k 40 --seed 7
  echo; echo "--"
done
