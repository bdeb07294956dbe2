// The language-model head and its loss in one op: cross_entropy(x · Wᵀ, targets), computed over
// chunks of rows so that the [N, V] logits never exist whole. For the paper's small T6 at B=16, T=1024
// those logits are 16,384 × 50,304 floats, 3.3 GB, and the composite path keeps them (and their
// gradient, and a bfloat16 copy of it) alive from the forward to the backward.
//
// The loss is a scalar, so its gradient with respect to the logits is known up to one factor as soon
// as a chunk's logits exist: for loss = (1/count) Σ_i (lse_i − z[i, t_i]) with z = x·Wᵀ,
//   dloss/dz[i, :] = (1/count) (softmax(z_i) − onehot(t_i)) =: (1/count) G[i, :]
//   dloss/dx = (1/count) G · W          dloss/dW = (1/count) Gᵀ · x
// so the forward turns each chunk's logits into G in place, multiplies G into the gradients of x and
// W right away, and drops the chunk; the backward only scales them by gloss / count. What is kept for
// the backward is the size of x and W, not of the logits. Under mixed precision the products take
// bfloat16 copies of x, W and G with float32 accumulation, as matmul does; 1/count is applied after
// the products, which changes nothing (count is a power of two in training; otherwise a rounding). The
// cross-entropy kernel writes G in bfloat16 directly then, the value a cast of a float32 G would give.
#include "autograd/mixed_precision.h"
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

namespace {

// Rows [begin, end) of a contiguous 2-D (or 1-D) tensor, as a view.
Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  const int64_t width = t.ndim() == 2 ? t.size(1) : 1;
  Shape shape = t.shape();
  shape[0] = end - begin;
  Shape strides = t.strides();
  return t.as_strided(shape, strides, t.offset() + begin * width);
}

// c = op(a) · op(b) + beta · c for packed 2-D operands.
void gemm_into(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double beta) {
  Backend::Gemm g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = c.size(0), g.n = c.size(1), g.k = ta ? a.size(0) : a.size(1);
  g.lda = a.size(1), g.ldb = b.size(1), g.ldc = c.size(1);
  g.beta = beta;
  if (c.numel() > 0) backend_of(c).gemm(g, a, b, c);
}

// Logits per chunk: 2^28, 1 GiB in float32. Smaller chunks cost time: each adds a read and write of
// the [V, d] gradient of W (docs/PERF.md has the sizes tried).
constexpr int64_t kLogitsPerChunk = int64_t{1} << 28;

}  // namespace

int64_t linear_cross_entropy_chunk_rows(int64_t vocab) {
  return std::max<int64_t>(1, kLogitsPerChunk / std::max<int64_t>(1, vocab));
}

Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets, int64_t chunk_rows) {
  const bool bf16 = product_in_bf16("linear_cross_entropy", x, weight);
  check_ids("linear_cross_entropy", targets);
  T6_CHECK(weight.ndim() == 2 && x.ndim() >= 1 && x.size(-1) == weight.size(1), "linear_cross_entropy: x ",
           shape_str(x.shape()), " and weight ", shape_str(weight.shape()), " need x [..., d] and weight [V, d]");
  T6_CHECK(targets.numel() * x.size(-1) == x.numel() &&
               std::equal(targets.shape().begin(), targets.shape().end(), x.shape().begin()),
           "linear_cross_entropy: x ", shape_str(x.shape()), " needs targets of shape [...] = x shape without the "
           "last axis, got ", shape_str(targets.shape()));
  T6_CHECK(targets.device() == x.device(), "linear_cross_entropy: x is on ", device_name(x.device()),
           " but targets on ", device_name(targets.device()));
  const int64_t n = targets.numel(), d = weight.size(1), vocab = weight.size(0);
  if (chunk_rows <= 0) chunk_rows = linear_cross_entropy_chunk_rows(vocab);
  Backend& be = backend_of(x);
  const Tensor flat_x = x.contiguous_data().view({n, d});            // (N,d)
  const Tensor flat_targets = targets.contiguous_data().view({n});  // (N)
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool record = grad_enabled() && (need_x || need_w);

  const Tensor x_op = bf16 ? bf16_copy(flat_x) : flat_x;                                      // (N,d)
  const Tensor w_op = bf16 ? bf16_weight(weight).detach() : weight.detach().contiguous_data();  // (V,d)

  // the weight's dtype: x may be a bfloat16 activation, whose gradient is float32 nonetheless
  const DType dtype = weight.dtype();
  Tensor divisor = empty({}, dtype, x.device());
  be.count_targets(flat_targets, vocab, divisor);
  Tensor losses = empty({n}, dtype, x.device()), lse = empty({n}, dtype, x.device());
  Tensor gx = need_x && record ? empty({n, d}, dtype, x.device()) : Tensor();       // G · W
  Tensor gw = need_w && record ? zeros({vocab, d}, dtype, x.device()) : Tensor();   // Gᵀ · x
  const Tensor ones_rows = record ? ones({std::min(chunk_rows, n)}, dtype, x.device()) : Tensor();
  Tensor logits = empty({std::min(chunk_rows, n), vocab}, dtype, x.device());       // one chunk's (rows,V)
  // G for the products: the logits' own buffer, or under mixed precision a bfloat16 one that the kernel
  // writes instead of a float32 G and its cast
  Tensor g_buffer = record && bf16 ? empty({std::min(chunk_rows, n), vocab}, DType::BF16, x.device()) : logits;

  for (int64_t begin = 0; begin < n; begin += chunk_rows) {
    const int64_t end = std::min(n, begin + chunk_rows), m = end - begin;
    Tensor z = rows(logits, 0, m);
    const Tensor t = rows(flat_targets, begin, end);
    Tensor chunk_losses = rows(losses, begin, end), chunk_lse = rows(lse, begin, end);
    gemm_into(rows(x_op, begin, end), false, w_op, true, z, 0.0);  // z = x · Wᵀ: (m,V)
    be.cross_entropy_forward(z, t, chunk_losses, chunk_lse);
    if (!record) continue;
    Tensor g_op = rows(g_buffer, 0, m);
    be.cross_entropy_backward(z, t, chunk_lse, rows(ones_rows, 0, m), g_op);  // G, in place of z or in bfloat16
    if (gx.defined()) {
      Tensor gx_rows = rows(gx, begin, end);
      gemm_into(g_op, false, w_op, false, gx_rows, 0.0);  // G · W: (m,d)
    }
    if (gw.defined()) gemm_into(g_op, true, rows(x_op, begin, end), false, gw, 1.0);  // += Gᵀ · x: (V,d)
  }

  Tensor loss = div(sum(losses), divisor);  // not recorded: neither carries a graph
  if (Node* node = make_node("linear_cross_entropy", loss, {x, weight})) {
    node->backward = [gx = gx.defined() ? node->save(gx) : Tensor(), gw = gw.defined() ? node->save(gw) : Tensor(),
                      divisor = node->save(divisor), shape = x.shape()](const Tensor& gloss) -> Grads {
      const Tensor factor = div(gloss, divisor);  // gloss / count
      return {gx.defined() ? mul(gx, factor).view(shape) : Tensor(), gw.defined() ? mul(gw, factor) : Tensor()};
    };
  }
  return loss;
}

}  // namespace t6
