#!/usr/bin/env bash
# Mutation check of the test suite: proves that the tests catch broken derivatives. Each mutation below
# plants one bug (a dropped term or a wrong sign in a backward of autograd/ops/ or its CPU kernel, a
# missing RoPE, a wrong scale, ...) in a scratch copy of the tree, rebuilds the tests there and runs
# them; a mutation no test fails on is reported as NOT CAUGHT. Run by hand and before a release, not in
# CI (about a minute per mutation on 2 cores). docs/MUTATION.md holds the last table.
#
# Usage: bash scripts/mutation_check.sh [--only REGEX] [--from N] [--tests FILTER] [--list] [--keep]
#                                        [--scratch DIR]
#   --only REGEX     run only the mutations whose file or description matches REGEX (grep -E)
#   --from N         start at mutation N (as numbered by --list)
#   --tests FILTER   run only these test cases (doctest's --test-case filter): which mutations do they catch?
#   --list           print the mutations and exit
#   --keep           keep the scratch directory (default: deleted at the end)
#   --scratch DIR    build there (reused when it already holds a build: only changed files recompile)
# Environment: JOBS (build jobs; default: every core), TEST_TIMEOUT (seconds one run of the suite may
# take before its running case counts as hung; default 300), OMP_NUM_THREADS (default 2).
# Exits 0 when every mutation was caught, 1 when one was not, 2 on an error (a pattern that no longer
# matches its file exactly once, a mutation that does not compile, or a suite that fails unmutated).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# One mutation per line: file @@ exact text @@ replacement @@ what the bug is. A line starting with "+"
# adds one more substitution (file @@ text @@ replacement) to the mutation above it. The text must occur
# exactly once in the file; "\n" in text or replacement is a newline.
mutations=$(cat <<'EOF'
autograd/ops/elementwise.cpp @@ return {unbroadcast(gy, sa), unbroadcast(gy, sb)}; @@ return {unbroadcast(gy, sa), unbroadcast(neg(gy), sb)}; @@ add backward: wrong sign of d/db
autograd/ops/elementwise.cpp @@ return {unbroadcast(gy, sa), unbroadcast(neg(gy), sb)}; @@ return {unbroadcast(gy, sa), unbroadcast(gy, sb)}; @@ sub backward: wrong sign of d/db
autograd/ops/elementwise.cpp @@ need_a ? unbroadcast(mul(gy, b), a.shape()) @@ need_a ? unbroadcast(neg(mul(gy, b)), a.shape()) @@ mul backward: wrong sign of d/da
autograd/ops/elementwise.cpp @@ need_b ? unbroadcast(mul(gy, a), b.shape()) @@ need_b ? unbroadcast(gy, b.shape()) @@ mul backward: d/db drops the factor a
autograd/ops/elementwise.cpp @@ need_a ? unbroadcast(div(gy, b), sa) @@ need_a ? unbroadcast(mul(gy, b), sa) @@ div backward: d/da multiplies by b instead of dividing
autograd/ops/elementwise.cpp @@ unbroadcast(neg(div(mul(gy, out), b)), b.shape()) @@ unbroadcast(div(mul(gy, out), b), b.shape()) @@ div backward: wrong sign of d/db
autograd/ops/elementwise.cpp @@ summed, 1, grad.numel() / n, n); @@ summed, 1, 1, n); @@ broadcast backward: sums only the first repeat of a broadcast operand
autograd/ops/elementwise.cpp @@       return {gx};\n    };\n  }\n  return y; @@       return {neg(gx)};\n    };\n  }\n  return y; @@ pointwise ops backward: wrong sign (every unary op)
core/cpu/kernels_elementwise.cpp @@ case UnaryOp::Neg: return map(gy, gx, n, cheap, [](T g) { return -g; }); @@ case UnaryOp::Neg: return map(gy, gx, n, cheap, [](T g) { return g; }); @@ cpu neg backward: wrong sign
core/cpu/kernels_elementwise.cpp @@ [](T g, T out) { return g * out; }); @@ [](T g, T out) { return -g * out; }); @@ cpu exp backward: wrong sign
core/cpu/kernels_elementwise.cpp @@ [](T g, T in) { return g / in; }); @@ [](T g, T in) { return g * in; }); @@ cpu log backward: g·x instead of g/x
core/cpu/kernels_elementwise.cpp @@ return g / (T(2) * out); @@ return g / out; @@ cpu sqrt backward: drops the 1/2
core/cpu/kernels_elementwise.cpp @@ return -g * out * out * out / T(2); @@ return g * out * out * out / T(2); @@ cpu rsqrt backward: wrong sign
core/cpu/kernels_elementwise.cpp @@ return g * out * (T(1) - out); @@ return g * out; @@ cpu sigmoid backward: drops the (1 − σ) term
core/cpu/kernels_elementwise.cpp @@ return g * (s + in * s * (T(1) - s)); @@ return g * s; @@ cpu silu backward: drops the x·σ·(1 − σ) term
core/cpu/kernels_elementwise.cpp @@ case UnaryOp::Scale: return map(gy, gx, n, cheap, [alpha](T g) { return alpha * g; }); @@ case UnaryOp::Scale: return map(gy, gx, n, cheap, [alpha](T g) { return g + 0 * alpha; }); @@ cpu scale backward: drops alpha
core/cpu/kernels_elementwise.cpp @@ case UnaryOp::AddScalar: return map(gy, gx, n, cheap, [](T g) { return g; }); @@ case UnaryOp::AddScalar: return map(gy, gx, n, cheap, [](T g) { return -g; }); @@ cpu add_scalar backward: wrong sign
core/cpu/kernels_elementwise.cpp @@ ggate[i] = gout[i] * up[i] * s * (T(1) + gate[i] * (T(1) - s)); @@ ggate[i] = gout[i] * up[i] * s; @@ cpu swiglu backward: d/dgate drops the g·(1 − σ) term
core/cpu/kernels_elementwise.cpp @@ gup[i] = gout[i] * gate[i] * s; @@ gup[i] = -gout[i] * gate[i] * s; @@ cpu swiglu backward: wrong sign of d/dup
autograd/ops/swiglu.cpp @@ return {ggate, gup}; @@ return {gup, ggate}; @@ swiglu backward: gate and up gradients swapped
autograd/ops/matmul.cpp @@ if (need_a) ga = ta ? product(b, gc, tb, true) @@ if (need_a) ga = ta ? neg(product(b, gc, tb, true)) @@ matmul backward: wrong sign of dA (A transposed)
autograd/ops/matmul.cpp @@ : product(gc, b, false, !tb);  // dA @@ : neg(product(gc, b, false, !tb));  // dA @@ matmul backward: wrong sign of dA
autograd/ops/matmul.cpp @@ if (need_b) gb = tb ? product(gc, a, true, ta) @@ if (need_b) gb = tb ? neg(product(gc, a, true, ta)) @@ matmul backward: wrong sign of dB (B transposed)
autograd/ops/matmul.cpp @@ : product(a, gc, !ta, false);  // dB @@ : neg(product(a, gc, !ta, false));  // dB @@ matmul backward: wrong sign of dB
autograd/ops/shape.cpp @@ return {reshape(gy, in_shape)}; @@ return {neg(reshape(gy, in_shape))}; @@ reshape backward: wrong sign
autograd/ops/shape.cpp @@ [inverse](const Tensor& gy) -> Grads { return {permute(gy, inverse)}; } @@ [order](const Tensor& gy) -> Grads { return {permute(gy, order)}; } @@ permute backward: permutes by the order instead of its inverse
autograd/ops/shape.cpp @@ -> Grads { return {gy}; };  // a copy @@ -> Grads { return {neg(gy)}; };  // a copy @@ contiguous backward: wrong sign
autograd/ops/shape.cpp @@ Tensor window = slice(gx, axis, start, start + gy.shape()[axis]); @@ Tensor window = slice(gx, axis, 0, gy.shape()[axis]); @@ slice backward: gradient placed at the start of the axis
autograd/ops/shape.cpp @@ -> Grads { return split(gy, axis, sizes); } @@ -> Grads { std::vector<Tensor> parts = split(gy, axis, sizes); parts.back() = neg(parts.back()); return parts; } @@ concat backward: wrong sign for the last part
autograd/ops/shape.cpp @@ return {gy.to_dtype(from)}; @@ return {neg(gy).to_dtype(from)}; @@ cast backward: wrong sign
autograd/ops/shape.cpp @@ return {gy.to_device(from)}; @@ return {neg(gy).to_device(from)}; @@ to backward: wrong sign
autograd/ops/reduce.cpp @@ return {repeat_reduced(gy, in_shape, std::vector<bool>(in_shape.size(), true))}; @@ return {neg(repeat_reduced(gy, in_shape, std::vector<bool>(in_shape.size(), true)))}; @@ sum (all) backward: wrong sign
autograd/ops/reduce.cpp @@ return {repeat_reduced(gy, in_shape, reduced)}; @@ return {neg(repeat_reduced(gy, in_shape, reduced))}; @@ sum (axis) backward: wrong sign
autograd/ops/reduce.cpp @@ return scale(sum(x), 1.0 / static_cast<double>(x.numel())); @@ return sum(x); @@ mean: missing 1/n
autograd/ops/softmax.cpp @@ softmax_backward(y, gy.contiguous_data(), gx, scale); @@ softmax_backward(y, gy.contiguous_data(), gx, 1.0); @@ softmax backward: drops the scale s
core/cpu/kernels_softmax.cpp @@ out[j] = scale * yr[j] * (gr[j] - dot); @@ out[j] = scale * yr[j] * gr[j]; @@ cpu softmax backward: drops the Σ_j gy_j·y_j term
core/cpu/kernels_softmax.cpp @@ out[j] = gr[j] - @@ out[j] = gr[j] + 0 * @@ cpu log_softmax backward: drops the softmax·Σ gy term
autograd/ops/cross_entropy.cpp @@ lse.device()), div(gloss, divisor)); @@ lse.device()), gloss); @@ cross_entropy backward: drops the 1/count of the mean
core/cpu/kernels_cross_entropy.cpp @@ out[t] -= g; @@ out[t] += g; @@ cpu cross_entropy backward: wrong sign of the one-hot term
core/cpu/kernels_cross_entropy.cpp @@ out[j] = g * @@ out[j] = @@ cpu cross_entropy backward: drops the upstream factor of the softmax term
core/cpu/kernels_cross_entropy.cpp @@ for (int64_t j = 0; j < vocab; ++j) out[j] = T(0); @@ for (int64_t j = 0; j < vocab; ++j) out[j] = grad_losses[r]; @@ cpu cross_entropy backward: ignored targets get a gradient
autograd/ops/embedding.cpp @@ return {gweight}; @@ return {neg(gweight)}; @@ embedding backward: wrong sign
core/cpu/kernels_embedding.cpp @@ for (int64_t c = c0; c < c1; ++c) w[c] += g[c]; @@ for (int64_t c = c0; c < c1; ++c) w[c] = g[c]; @@ cpu embedding backward: repeated ids overwrite instead of adding up
autograd/ops/rms_norm.cpp @@ return {gx.view(shape)}; @@ return {neg(gx.view(shape))}; @@ rms_norm backward: wrong sign
core/cpu/kernels_rms_norm.cpp @@ out[j] = st * (gr[j] - xr[j] * c); @@ out[j] = st * gr[j]; @@ cpu rms_norm backward: drops the x·r²·mean(gy⊙x) term
core/cpu/kernels_rms_norm.cpp @@ const T c = static_cast<T>(s * s * dot_row(gr, xr, d) @@ const T c = static_cast<T>(s * dot_row(gr, xr, d) @@ cpu rms_norm backward: r instead of r² in the mean term
autograd/ops/rope.cpp @@ backend_of(gy).rope(gy.contiguous_data(), positions, gx, inner, true); @@ backend_of(gy).rope(gy.contiguous_data(), positions, gx, inner, false); @@ rope backward: rotates forward instead of back
core/cpu/kernels_rope.cpp @@ const T sign = inverse ? T(-1) : T(1); @@ const T sign = T(1); @@ cpu rope: the inverse rotation (backward) rotates forward
core/cpu/kernels_rope.cpp @@ yp[row * dh + j + half] = -a * s + b * c; @@ yp[row * dh + j + half] = a * s + b * c; @@ cpu rope: wrong sign in the second half of the rotation
autograd/ops/tpa_product.cpp @@ p.scale = 1.0 / static_cast<double>(p.rank); @@ p.scale = 1.0; @@ tpa_product: missing 1/R (forward and backward alike)
core/cpu/kernels_tpa_product.cpp @@ gan[h * R + r] = scale * dot; @@ gan[h * R + r] = dot; @@ cpu tpa_product backward: d/da drops the 1/R
core/cpu/kernels_tpa_product.cpp @@ gan[h * R + r] = scale * dot; @@ gan[h * R + r] = T(1.015) * scale * dot; @@ cpu tpa_product backward: d/da 1.5% too large
core/cpu/kernels_tpa_product.cpp @@ gbn[r * dh + j] += w * g_row[j]; @@ gbn[r * dh + j] = w * g_row[j]; @@ cpu tpa_product backward: d/db keeps only the last head
autograd/ops/flash_attention.cpp @@ return {gq, gk, gv}; @@ return {gq, gk, neg(gv)}; @@ flash_attention backward: wrong sign of dv
core/cpu/kernels_flash_attention.cpp @@ const T gs = prob * (dot(gi, vj, dh) - D); @@ const T gs = prob * dot(gi, vj, dh); @@ cpu flash_attention backward: drops the softmax term D_i
core/cpu/kernels_flash_attention.cpp @@ gvj[d] += prob * gi[d]; @@ gvj[d] -= prob * gi[d]; @@ cpu flash_attention backward: wrong sign of dv
core/cpu/kernels_flash_attention.cpp @@ gqi[d] += scale * gs * kj[d]; @@ gqi[d] += gs * kj[d]; @@ cpu flash_attention backward: dq drops the scale
core/cpu/kernels_flash_attention.cpp @@ gkj[d] += scale * gs * qi[d]; @@ gkj[d] -= scale * gs * qi[d]; @@ cpu flash_attention backward: wrong sign of dk
core/cpu/kernels_flash_attention.cpp @@ const int64_t hk = h / group; @@ const int64_t hk = h % Hkv; @@ cpu flash_attention forward: query head h reads key/value head h mod Hkv
core/cpu/kernels_adamw.cpp @@ p - lr * (m / bias1) / (std::sqrt(v / bias2) + eps) @@ p - lr * m / (std::sqrt(v) + eps) @@ cpu adamw: no bias correction
core/cpu/kernels_adamw.cpp @@ const double decay = 1.0 - h.lr * h.weight_decay; @@ const double decay = 1.0 + h.lr * h.weight_decay; @@ cpu adamw: weight decay with the wrong sign
core/cpu/kernels_adamw.cpp @@ const double m = b1 * exp_avg[i] + (1.0 - b1) * g; @@ const double m = b1 * exp_avg[i] + g; @@ cpu adamw: first moment without (1 − β1)
autograd/engine.cpp @@ if (!inserted) slot->second = add(slot->second, input_grads[i]); @@ if (!inserted) slot->second = input_grads[i]; @@ engine: a second path into a tensor replaces the first one's gradient
autograd/engine.cpp @@ Tensor(impl->grad).add_(grad); @@ impl->grad = grad.clone_data().impl_ptr(); @@ engine: a leaf's .grad is replaced, not accumulated, by a second backward
nn/tpa_attention.cpp @@ f.b_k = rope(reshape(c_qkv.W_B_k.forward(x), {B, T, R, dh}), positions); @@ f.b_k = reshape(c_qkv.W_B_k.forward(x), {B, T, R, dh}); @@ tpa, tpa_kvonly: keys without RoPE
nn/tpa_attention.cpp @@ f.b_q = rope(reshape(c_qkv.W_B_q->forward(x), {B, T, RQ, dh}), positions); @@ f.b_q = reshape(c_qkv.W_B_q->forward(x), {B, T, RQ, dh}); @@ tpa: queries without RoPE
nn/tpa_attention.cpp @@ f.b_q = rope(reshape(c_q->forward(x), {B, T, H, dh}), positions); @@ f.b_q = reshape(c_q->forward(x), {B, T, H, dh}); @@ tpa_kvonly: queries without RoPE
nn/tpa_attention.cpp @@ f.b_v = reshape(c_qkv.W_B_v.forward(x), {B, T, R, dh}); @@ f.b_v = rope(reshape(c_qkv.W_B_v.forward(x), {B, T, R, dh}), positions); @@ tpa, tpa_kvonly: values rotated by RoPE
nn/tpa_attention.cpp @@ causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(config.head_dim))) @@ causal_attention(q, k, v, 1.0 / static_cast<double>(config.head_dim)) @@ tpa, tpa_kvonly: attention scaled by 1/dh instead of 1/√dh
nn/gqa_attention.cpp @@ return rope(reshape(c_k.forward(x), {x.size(0), x.size(1), config.kv_heads(), config.head_dim}), positions); @@ return reshape(c_k.forward(x), {x.size(0), x.size(1), config.kv_heads(), config.head_dim}); @@ mha, gqa, mqa: keys without RoPE
nn/gqa_attention.cpp @@ causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(config.head_dim))) @@ causal_attention(q, k, v, 1.0 / static_cast<double>(config.head_dim)) @@ mha, gqa, mqa: attention scaled by 1/dh instead of 1/√dh
nn/causal_attention.cpp @@ reshape(q, {B, Tq, Hkv, G, dh}), {0, 2, 3, 1, 4}) @@ reshape(q, {B, Tq, G, Hkv, dh}), {0, 3, 2, 1, 4}) @@ gqa: query head h = g·Hkv + kv reads key/value head h mod Hkv (not h / G)
+ nn/causal_attention.cpp @@ y = permute(reshape(y, {B, Hkv, G, Tq, dh}), {0, 3, 1, 2, 4}); @@ y = permute(reshape(y, {B, Hkv, G, Tq, dh}), {0, 3, 2, 1, 4});
nn/flash_tpa_decode.cpp @@ p.value_scale = 1.0 / static_cast<double>(R); @@ p.value_scale = 1.0; @@ decode: values without 1/R
nn/flash_tpa_decode.cpp @@ (static_cast<double>(factorized ? RQ * R : R) * std::sqrt @@ (static_cast<double>(factorized ? RQ : R) * std::sqrt @@ decode: logits without the keys' 1/R
nn/mlp.h @@ swiglu(c_fc1.forward(x), c_fc2.forward(x)) @@ swiglu(c_fc2.forward(x), c_fc1.forward(x)) @@ mlp: silu on c_fc2 instead of c_fc1
nn/t6_model.cpp @@ return transformer.wte.logits(rms_norm(x, config.norm_eps)); @@ return transformer.wte.logits(x); @@ model: the final RMSNorm missing
EOF
)

only="" from=1 tests="" list=false keep=false scratch=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="$2"; shift 2 ;;
    --from) from="$2"; shift 2 ;;
    --tests) tests="$2"; shift 2 ;;
    --list) list=true; shift ;;
    --keep) keep=true; shift ;;
    --scratch) scratch="$2"; keep=true; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "mutation_check.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
command -v python3 >/dev/null || { echo "mutation_check.sh: needs python3" >&2; exit 2; }

if $list; then
  echo "$mutations" | grep -v '^+' | awk -F ' @@ ' '{ printf "%3d  %-38s %s\n", NR, $1, $4 }'
  exit 0
fi

if [ -z "$scratch" ]; then scratch="$(mktemp -d "${TMPDIR:-/tmp}/t6_mutation_XXXXXX")"; fi
$keep || trap 'rm -rf "$scratch"' EXIT
src="$scratch/src" build="$scratch/build"
mkdir -p "$src"

# The tree as it is now (tracked files and new files not ignored), without build outputs. Only files
# whose contents differ are written, so a reused scratch build recompiles just what changed (and what
# an interrupted run left mutated).
echo "mutation check: copying the tree to $src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard) | python3 -c '
import os, shutil, sys
root, dest = sys.argv[1], sys.argv[2]
for path in sys.stdin.read().split("\0"):
    source, target = os.path.join(root, path), os.path.join(dest, path)
    if not path or not os.path.isfile(source):
        continue
    with open(source, "rb") as f:
        data = f.read()
    if os.path.isfile(target):
        with open(target, "rb") as f:
            if f.read() == data:
                continue
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)
    shutil.copymode(source, target)
' "$root" "$src"
# The GPT-2 tests read the vocabulary from the real tree, so they run (not skip) when it is there.
[ -d "$root/third_party/gpt2" ] && export T6_GPT2_DIR="$root/third_party/gpt2"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

jobs="${JOBS:-$(nproc)}"
timeout="${TEST_TIMEOUT:-300}"  # seconds for one run of the suite (about 20 s on 2 idle cores)
log="$scratch/log"
mkdir -p "$log"
build_tests() { cmake --build "$build" -j "$jobs" --target t6_tests >"$1" 2>&1; }

# Runs the suite up to its first failure and prints the failing test case's name; prints nothing and
# returns 0 when everything passes. A mutation can also make a test wait forever (one that polls for a
# file a crashed child never writes): when the suite outlives $timeout, the case after the last one
# that finished is the one that hung; it is excluded and the suite run again, so that the table names
# a test that fails, and says which one hung.
first_failure() {  # $1: log file prefix
  local exclude="" hung="" attempt rc last next
  for attempt in 1 2 3; do
    local out="$1.$attempt.txt"
    rc=0
    # killed outright at the timeout: doctest must not get to finish the hung case as a crash
    (cd "$build" && timeout --signal=KILL "$timeout" stdbuf -oL ./t6_tests --duration=true --abort-after=1 \
       ${tests:+"--test-case=$tests"} ${exclude:+"--test-case-exclude=$exclude"} >"$out" 2>&1) 2>/dev/null || rc=$?
    [ "$rc" -eq 0 ] && { [ -z "$hung" ] || echo "NOT CAUGHT except by hanging in: $hung"; return 0; }
    # With --duration every case prints a "TEST CASE:" header; a failing one (a failed check, an
    # exception, a crash) follows its header with a "file:line: ERROR:" or "FATAL ERROR:" line, also
    # when a later case then hung.
    last=$(awk '/^TEST CASE:/ { sub(/^TEST CASE: */, ""); name = $0 }
                / (FATAL )?ERROR: / { print name; exit }' "$out")
    if [ -n "$last" ] || [ "$rc" -ne 137 ]; then
      echo "${last:-the test binary failed (see $out)}${hung:+ (after excluding $hung, which hung)}"
      return 1
    fi
    last=$(grep -E '^[0-9.]+ s: ' "$out" | tail -n 1 | sed -E 's/^[0-9.]+ s: //')
    next=$(cd "$build" && ./t6_tests --list-test-cases ${tests:+"--test-case=$tests"} \
             ${exclude:+"--test-case-exclude=$exclude"} |
           sed -n '/^====/,/^====/p' | grep -v '^====' |
           if [ -n "$last" ]; then grep -A 1 -x -F -- "$last" | tail -n 1; else head -n 1; fi)
    hung="${hung:+$hung; }$next"
    exclude="${exclude:+$exclude,}$(printf '%s' "$next" | sed 's/,/\\,/g')"
  done
  echo "the suite hung (in: $hung)"
  return 1
}

echo "mutation check: configuring and building the unmutated tests (CPU only) in $build"
cmake -S "$src" -B "$build" -DT6_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >"$log/configure.txt" 2>&1 ||
  { echo "error: configure failed, see $log/configure.txt" >&2; exit 2; }
build_tests "$log/build_base.txt" || { echo "error: the unmutated tree does not build, see $log/build_base.txt" >&2; exit 2; }
base=$(first_failure "$log/run_base") && [ -z "$base" ] ||
  { echo "error: the unmutated suite fails ($base), see $log/run_base.*.txt" >&2; exit 2; }

# apply.py reads "file @@ text @@ replacement" lines on stdin and substitutes each in place, failing
# unless the text occurs exactly once.
apply="$scratch/apply.py"
cat >"$apply" <<'EOF'
import sys
for line in sys.stdin.read().splitlines():
    path, old, new = (part.replace("\\n", "\n") for part in line.split(" @@ ")[:3])
    with open(path) as f:
        text = f.read()
    count = text.count(old)
    if count != 1:
        sys.exit(f"{path}: the mutation's text occurs {count} times (must be exactly once): {old!r}")
    with open(path, "w") as f:
        f.write(text.replace(old, new))
EOF

table="$scratch/mutation_table.md"
{
  echo "| # | file | planted bug | caught by (first failing test case${tests:+ of $tests}) |"
  echo "|---|---|---|---|"
} >"$table"
caught=0 missed=0 errors=0 number=0
# Each mutation with its continuation lines, as one record separated by a blank line.
records=$(echo "$mutations" | awk '/^\+/ { print; next } NR > 1 { print "" } { print }')
while IFS= read -r -d $'\x1e' record; do
  [ -n "$record" ] || continue
  number=$((number + 1))
  first=$(echo "$record" | head -n 1)
  file=${first%% @@ *}
  description=${first##* @@ }
  if [ "$number" -lt "$from" ] || { [ -n "$only" ] && ! echo "$file $description" | grep -Eq -- "$only"; }; then
    continue
  fi
  substitutions=$(echo "$record" | sed 's/^+ //' | awk -F ' @@ ' '{ print $1 " @@ " $2 " @@ " $3 }')
  files=$(echo "$substitutions" | awk -F ' @@ ' '{ print $1 }' | sort -u)
  for f in $files; do cp "$src/$f" "$scratch/original.$(echo "$f" | tr / _)"; done
  printf '%3d  %-60s ' "$number" "$description"
  result=""
  if ! (cd "$src" && echo "$substitutions" | python3 "$apply") 2>"$log/apply_$number.txt"; then
    result="ERROR: $(cat "$log/apply_$number.txt")"
    errors=$((errors + 1))
  elif ! build_tests "$log/build_$number.txt"; then
    result="ERROR: does not compile (see $log/build_$number.txt)"
    errors=$((errors + 1))
  elif result=$(first_failure "$log/run_$number"); then
    result=${result:-NOT CAUGHT}
    missed=$((missed + 1))
  else
    caught=$((caught + 1))
  fi
  for f in $files; do cp "$scratch/original.$(echo "$f" | tr / _)" "$src/$f"; done
  echo "$result"
  echo "| $number | \`$file\` | $description | $result |" >>"$table"
done < <(echo "$records" | awk 'BEGIN { RS = ""; ORS = "\x1e" } { print }')

echo
cat "$table"
echo
echo "mutation check: $caught caught, $missed not caught, $errors errors ($(date -u +%Y-%m-%d), $(git -C "$root" rev-parse --short HEAD) + working tree)"
$keep && echo "scratch directory kept: $scratch"
[ "$errors" -eq 0 ] || exit 2
[ "$missed" -eq 0 ] || exit 1
