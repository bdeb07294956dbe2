// The small interface between the autograd/nn layers and a device. Every kernel the engine needs is
// one virtual function here, its contract written as a formula; the CPU backend (core/cpu/, over
// OpenBLAS and OpenMP) and the CUDA backend (cuda/) implement it, file for file: each kernel family
// lives in core/cpu/kernels_<family>.cpp and cuda/kernels_<family>.cu (gemm in gemm.cpp and gemm.cu).
// Autograd and nn/ call `backend_of(tensor).kernel(...)`, ask the capability questions below instead of
// testing which device they run on, and never include a device header.
//
// Contract for every kernel: tensors are contiguous and on this backend's device, outputs are
// pre-allocated with the right shape and dtype, and shapes were validated by the caller (the op in
// autograd/ops), which is where user-facing errors are raised. Float kernels accept float32 and
// float64 (the CUDA backend: float32, and bfloat16 where noted).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace t6 {

enum class UnaryOp : uint8_t { Neg, Exp, Log, Sqrt, Rsqrt, Sigmoid, Silu, Scale, AddScalar };
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };

// One parameter tensor and its AdamW state, for the multi-tensor optimizer kernel.
struct AdamWSlot {
  Tensor param, grad, exp_avg, exp_avg_sq;  // all float32, same shape, contiguous
};

struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;        // 1-based, for bias correction
  double grad_scale;   // multiplies every gradient first (global-norm clipping); 1 when not clipping
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;  // "cpu (OpenBLAS 0.3.21, 2 threads)"

  // --- memory --------------------------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  // copy_from_host may return before the copy is done (CUDA: the bytes are staged in pinned memory),
  // but host_src may be freed or overwritten as soon as it returns. copy_to_host and synchronize wait
  // for the device; they also throw the errors a device kernel found in its data since the last wait
  // (an id out of range: see "deferred errors" below), so a training step waits only where it reads.
  virtual void copy_to_host(void* host_dst, const void* device_src, size_t bytes) = 0;
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  struct MemoryStats {
    size_t current_bytes = 0, peak_bytes = 0;  // bytes handed out to tensors now / at most so far
    size_t reserved_bytes = 0;                 // held by a caching allocator, in use or not
  };
  static size_t cached_unused(const MemoryStats& s) {
    return s.reserved_bytes > s.current_bytes ? s.reserved_bytes - s.current_bytes : 0;
  }
  virtual MemoryStats memory_stats() const { return {}; }
  // Bytes this device can still hand out: what a command checks its estimated need against before it
  // allocates, so that a request that cannot fit is refused at once with the numbers.
  virtual size_t free_memory() const = 0;
  // Let float32 matmuls use TF32 tensor cores where the device has them; a backend without ignores it.
  virtual void allow_tf32(bool) {}

  // --- capabilities: what callers ask instead of testing which device they run on ---------------
  // The defaults describe a backend over host memory that computes in its inputs' dtype (the CPU).
  //
  // Mixed precision: gemm and flash_attention take bfloat16 operands with float32 results. Where
  // false, Bf16MatmulGuard is ignored and products stay in the inputs' dtype.
  virtual bool multiplies_bf16() const { return false; }
  // Causal attention of heads of this size should run as the fused flash_attention kernels rather than
  // as two batched products around a softmax (nn/causal_attention.cpp's composite path): true unless
  // the backend's fused kernels cannot take heads this wide.
  virtual bool prefers_fused_attention(int64_t /*head_dim*/) const { return true; }
  // Ids and targets live where the host reads them, so a bad one throws before or as its kernel runs.
  // Where false, nothing reads them back (that would wait for the device every step): the kernel
  // reports a bad one at the next wait instead ("deferred errors" below).
  virtual bool checks_ids_at_once() const { return true; }

  // --- kernel timing (profiling) -------------------------------------------------------------
  // While switched on, the backend times every kernel it launches (CUDA: with events on its stream,
  // so the numbers are GPU time, not launch time). kernel_times() waits for the device and returns
  // the totals per kernel name since timing was switched on, largest first. By default a backend keeps
  // none (the CPU).
  struct KernelTime {
    std::string kernel;  // the method's name; gemm adds its dtypes and sizes
    int64_t calls = 0;
    double ms = 0;
  };
  virtual void set_kernel_timing(bool) {}
  virtual std::vector<KernelTime> kernel_times() { return {}; }

  // --- graphs (captured kernel sequences) ------------------------------------------------------
  // Between begin_graph_capture() and end_graph_capture() the kernels queued are recorded, not run;
  // replay_graph() then runs all of them with one launch, on the same memory. This serves the decode
  // step, whose ~400 small kernels cost more to launch one by one than to run. Memory allocated while
  // capturing is kept for the graph until release_graph(), so no later tensor lands in a buffer the
  // replays write. The captured work must read its inputs from device buffers the caller rewrites
  // between replays: copying from or to the host, or waiting for the device, while capturing throws.
  // By default a backend has no graphs (the CPU): supports_graphs() is false and the others throw.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_graph_capture();
  virtual int64_t end_graph_capture();  // → the graph's id
  virtual void replay_graph(int64_t graph);
  virtual void release_graph(int64_t graph);
  // The operations (kernels, copies) one replay of the graph launches.
  virtual int64_t graph_operations(int64_t graph) const;

  // --- data movement -------------------------------------------------------------------------
  // out[i] = value in out's dtype; to int32 it truncates toward zero, saturates, and NaN becomes 0.
  virtual void fill(Tensor& out, double value) = 0;
  // dst[i] = src[i] for every multi-index; both may have any strides (the one kernel that may read
  // a non-contiguous tensor, since it follows the strides). Same shape and dtype.
  virtual void strided_copy(const Tensor& src, Tensor& dst) = 0;
  // dst[i] = src[i] in dst's dtype, converted as fill converts; same numel.
  virtual void cast(const Tensor& src, Tensor& dst) = 0;

  // --- elementwise ---------------------------------------------------------------------------
  // y = op(x); Scale: alpha·x, AddScalar: x + alpha.
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& y, double alpha) = 0;
  // gx = gy · op'(x), using whichever of x or y (the forward output) the derivative needs.
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                              double alpha) = 0;
  // out[i] = a[i % a.numel] op b[i % b.numel]: a trailing-suffix operand repeats across the leading
  // dimensions (a row vector over a matrix, a scalar over anything).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // y += alpha · x (same numel)
  virtual void axpy(double alpha, const Tensor& x, Tensor& y) = 0;

  // --- reductions ----------------------------------------------------------------------------
  // x viewed as [outer, n, inner]; y[o, i] = Σ_r x[o, r, i]. Covers sum over an axis, over all,
  // and the gradient of broadcasting (outer = 1).
  virtual void sum_axis(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner) = 0;
  // Σ over every tensor of Σ x², accumulated in double; for global-norm gradient clipping.
  virtual double sum_of_squares(const std::vector<Tensor>& tensors) = 0;

  // --- matrix multiply -----------------------------------------------------------------------
  // For b in [0, batch): C_b = alpha · op(A_b) · op(B_b) + beta · C_b, row-major, where op transposes
  // when the flag is set, A_b starts at a + b·stride_a (elements), and so on. C is m×n, op(A) m×k.
  // a, b and c share one dtype, except that a backend that multiplies_bf16() also takes bfloat16 a and
  // b with a float32 c (mixed precision: bf16 inputs, fp32 accumulation and output).
  struct Gemm {
    bool trans_a = false, trans_b = false;
    int64_t m = 0, n = 0, k = 0;
    double alpha = 1.0, beta = 0.0;
    int64_t lda = 0, ldb = 0, ldc = 0;
    int64_t stride_a = 0, stride_b = 0, stride_c = 0, batch = 1;
  };
  virtual void gemm(const Gemm& g, const Tensor& a, const Tensor& b, Tensor& c) = 0;

  // --- fused neural-network kernels ----------------------------------------------------------
  // x is [rows, tk]; y = softmax(scale · x) per row. With causal, x is rows of [..., tq, tk] and
  // entry (i, j) of each [tq, tk] block is masked when j > i + (tk - tq).
  virtual void softmax_forward(const Tensor& x, Tensor& y, double scale, bool causal, int64_t tq) = 0;
  // gx = scale · y ⊙ (gy − Σ_j gy·y)
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, double scale) = 0;
  virtual void log_softmax_forward(const Tensor& x, Tensor& y) = 0;                       // [rows, n]
  virtual void log_softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx) = 0;  // gy − e^y Σgy
  // Deferred errors: ids index rows, so a bad one (a target outside [−1, V), an embedding id outside
  // [0, V)) is an Error naming the id, its position and the fix. A backend that checks_ids_at_once()
  // throws it before the kernel's result is used. One that does not (a GPU) never reads ids back to
  // check them: its kernel treats the row safely (zero output, no loss, no gradient) and the backend
  // throws the first bad id at its next wait for the device (copy_to_host, synchronize, sum_of_squares).
  //
  // logits [N, V], targets int32 [N] (−1 = ignore): losses[i] = logsumexp(logits_i) − logits[i, t_i]
  // (0 when ignored), and lse[i] saved for backward.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse) = 0;
  // glogits[i, :] = grad_losses[i] · (softmax(logits_i) − onehot(t_i)); zero rows where ignored.
  // glogits may be logits itself (each element is read before it is overwritten), or bfloat16 for float32
  // logits (the operand of the head's gradient products under mixed precision; rounded to nearest even).
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                      const Tensor& grad_losses, Tensor& glogits) = 0;
  // The mean's denominator: divisor (one float element) = max(1, #{i : 0 ≤ targets[i] < vocab}), counted
  // on the device so that no count comes back to the host (1 when every target is ignored, making the
  // mean 0, not 0/0; a target out of range counts as ignored, as in cross_entropy_forward). targets int32 [N].
  virtual void count_targets(const Tensor& targets, int64_t vocab, Tensor& divisor) = 0;
  // out[i, :] = weight[ids[i], :]; ids int32 [N], each in [0, V) (else a deferred error, above).
  virtual void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) = 0;
  // gweight[ids[i], :] += gout[i, :] (repeated ids accumulate)
  virtual void embedding_backward(const Tensor& ids, const Tensor& gout, Tensor& gweight) = 0;
  // x [rows, d]: y = x · rstd, rstd = 1/sqrt(mean(x²) + eps), saved per row. y may be bfloat16 for a
  // float32 x (the input of products under mixed precision): y = bf16(x · rstd), rounded to nearest even.
  virtual void rms_norm_forward(const Tensor& x, Tensor& y, Tensor& rstd, double eps) = 0;
  // gx = rstd · (gy − x · rstd² · mean(gy ⊙ x))
  virtual void rms_norm_backward(const Tensor& x, const Tensor& rstd, const Tensor& gy, Tensor& gx) = 0;
  // x viewed [P, inner, dh] with positions int32 [P]: the spec's half-split RoPE of every row of
  // length dh at its position; `inverse` rotates by −θ (the backward, since a rotation's transpose
  // is its inverse).
  virtual void rope(const Tensor& x, const Tensor& positions, Tensor& y, int64_t inner, bool inverse) = 0;
  // SwiGLU's gate (spec MLP): out = silu(gate) ⊙ up, all of one shape; out may be bfloat16 for float32
  // gate and up (mixed precision: out = bf16(silu(gate) ⊙ up), rounded to nearest even). Backward writes
  // (overwrites) ggate = gout ⊙ up ⊙ σ(gate)(1 + gate(1 − σ(gate))) and gup = gout ⊙ silu(gate).
  virtual void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  virtual void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& gout, Tensor& ggate,
                               Tensor& gup) = 0;
  // TPA's per-token factor product with its 1/R (spec: q = (1/RQ) A_q B_q, k = (1/R) A_k B_k, v likewise):
  //   a (N,H,R), b (N,R,dh) → out (N,H,dh), out[n] = scale · a[n] · b[n]
  // Backward writes (overwrites) ga[n] = scale · gout[n] · b[n]ᵀ and gb[n] = scale · a[n]ᵀ · gout[n].
  struct TPAProduct {
    int64_t tokens = 0, heads = 0, rank = 0, head_dim = 0;
    double scale = 1.0;
  };
  virtual void tpa_product_forward(const TPAProduct& p, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void tpa_product_backward(const TPAProduct& p, const Tensor& a, const Tensor& b, const Tensor& gout,
                                    Tensor& ga, Tensor& gb) = 0;
  // Fused causal attention (FlashAttention-2: the [Tq, Tk] score matrix is never stored; each query
  // row keeps a running max and sum over key tiles, and backward recomputes the probabilities).
  //   q (B,Tq,H,dh), k and v (B,Tk,Hkv,dh), out (B,Tq,H,dh), lse (B,H,Tq), all of one float dtype:
  //   lse[b,h,i] = log Σ_j exp(scale · q_i·k_j), saved for backward. Query i sits at position
  //   i + Tk − Tq and sees keys j ≤ that; head h reads key/value head h / (H / Hkv).
  // Mixed precision (where multiplies_bf16()): q, k, v and, in backward, gout may be bfloat16, with out,
  // lse and the gradients float32; the products then take bfloat16 operands (the probabilities rounded
  // to bfloat16 too) and accumulate in float32. Backward writes gq, gk, gv (overwriting them), using
  // D_i = Σ gout_i ⊙ out_i; a backend may sum gq's terms in an order that varies from run to run (the
  // CUDA tensor-core kernel adds them with atomics), so its last bits may vary.
  struct FlashAttention {
    int64_t batch = 0, q_len = 0, kv_len = 0, heads = 0, kv_heads = 0, head_dim = 0;
    double scale = 1.0;
  };
  virtual void flash_attention_forward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v,
                                       Tensor& out, Tensor& lse) = 0;
  virtual void flash_attention_backward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& out, const Tensor& lse, const Tensor& gout, Tensor& gq,
                                        Tensor& gk, Tensor& gv) = 0;
  // TPA's fused causal attention (spec "Tensor Product Attention"): flash_attention over heads formed
  // from each token's factors inside the call and not kept past it,
  //   q_t = (1/RQ) A_q[t] B_q[t],  k_t = (1/R) A_k[t] B_k[t],  v_t = (1/R) A_v[t] B_v[t]
  // with A_q (B,T,H,RQ), B_q (B,T,RQ,dh), A_k and A_v (B,T,H,R), B_k and B_v (B,T,R,dh) (B_q and B_k
  // already rotated). A plain query (q_rank = 0) comes as b_q = q (B,T,H,dh) itself, a_q unused.
  // out (B,T,H,dh) and lse (B,H,T) are those of flash_attention_forward on (q, k, v) with Tq = Tk = T.
  // Backward writes (overwrites) the factor gradients: with gq, gk, gv those of flash_attention_backward,
  // per token ga_k = (1/R) gk B_kᵀ and gb_k = (1/R) A_kᵀ gk (tpa_product_backward), likewise for v and
  // the query (plain query: gb_q = gq).
  // dtypes: every factor, out, lse, gout and gradient of one float dtype; or, with bf16_products (only
  // where multiplies_bf16()), factors float32 or bfloat16 (all one dtype), out and lse float32, gout
  // bfloat16 and gradients in the factors' dtype: the heads are formed in float32 and rounded to
  // bfloat16 as the products' operands, as flash_attention rounds q, k and v. Backward's out may also
  // be forward's rounded to bfloat16 (the op's output when only a product reads it).
  struct TPAFlashAttention {
    int64_t batch = 0, seq_len = 0, heads = 0, q_rank = 0, rank = 0, head_dim = 0;
    double scale = 1.0;
    bool bf16_products = false;
  };
  struct TPAFactorTensors {
    Tensor a_q, b_q, a_k, b_k, a_v, b_v;
  };
  virtual void tpa_flash_attention_forward(const TPAFlashAttention& p, const TPAFactorTensors& f, Tensor& out,
                                           Tensor& lse) = 0;
  virtual void tpa_flash_attention_backward(const TPAFlashAttention& p, const TPAFactorTensors& f, const Tensor& out,
                                            const Tensor& lse, const Tensor& gout, TPAFactorTensors& grads) = 0;
  // AdamW with decoupled weight decay over every slot (spec), with g = grad_scale · grad and t = step:
  //   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
  //   p ← p − lr·wd·p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
  virtual void adamw_step(std::vector<AdamWSlot>& slots, const AdamWHyper& h) = 0;

  // --- inference -----------------------------------------------------------------------------
  // A decode step's KV-cache write: buffer viewed [B, M, n], values [B, n], slots int32 [B] in [0, M):
  // buffer[b, slots[b], :] = values[b, :]. The slots are read on the device, so a captured decode step
  // (a CUDA graph) writes where each replay's slots say. The caller validated the slots.
  virtual void scatter_rows(const Tensor& values, const Tensor& slots, Tensor& buffer) = 0;

  // FlashTPA decode attention (spec "Inference with the factorized KV cache"): one new query per row
  // attends to the first lengths[b] cached tokens of row b, read as factors, never forming K or V.
  //   query, factorized (q_rank > 0): a_q [B,H,RQ], b_q [B,RQ,dh] (rotated)
  //          plain      (q_rank = 0): b_q [B,H,dh], the rotated heads (a_q unused)
  //   cache: a_k [B,M,H,R], b_k [B,M,R,dh] (rotated), a_v [B,M,H,R], b_v [B,M,R,dh]; M = capacity
  //   lengths int32 [B], each in [1, M]; out [B,H,dh]
  // logit[h,m] = logit_scale · Σ_r Σ_s A_q[h,r] A_k[m,h,s] <B_q[r], B_k[m,s]>
  //              (plain: logit_scale · Σ_s A_k[m,h,s] <q_h, B_k[m,s]>)
  // out[h]     = value_scale · Σ_m softmax_m(logit[h]) Σ_u A_v[m,h,u] B_v[m,u]
  // dtypes: every factor and out float32 (or all float64, CPU only); or every factor bfloat16 with out
  // float32, the mixed-precision cache: products of bf16 operands accumulated in float32. There the CUDA
  // backend (tensor cores; head_dim ≤ 128, heads ≤ 128) computes, with p[h,m] = exp(logit[h,m] − max_m),
  //   logit[h,m] as above to about 16 bits (s = <B_q[r], B_k[m,s]> enters as bf16(s) + bf16(s − bf16(s)))
  //   out[h] = value_scale · Σ_m Σ_u bf16(p[h,m] · A_v[m,h,u]) · B_v[m,u] / Σ_m p[h,m]
  // and the CPU the float32 formula on the widened factors: they differ by at most about 2^-9 ·
  // value_scale · Σ_u max|A_v[·,·,u] · B_v[·,u]|.
  struct TPADecode {
    int64_t batch = 0, heads = 0, q_rank = 0, rank = 0, head_dim = 0, capacity = 0;
    double logit_scale = 1.0, value_scale = 1.0;
  };
  virtual void tpa_decode_attention(const TPADecode& p, const Tensor& a_q, const Tensor& b_q, const Tensor& a_k,
                                    const Tensor& b_k, const Tensor& a_v, const Tensor& b_v, const Tensor& lengths,
                                    Tensor& out) = 0;

  // The fused decode step (nn/fused_decode.h): matrix-vector products for the few rows of a decode step
  // (one new token per row), each reading its weight once for all rows, with the step's small operations
  // folded in. x (B,K) and out are float32 (the CPU: float64 too), W (N,K) of x's dtype or bfloat16 (the
  // decode copy of the weights), products accumulated in float32 or better. With norm_eps, x is first
  // rms-normalized per row, x̂[b] = x[b] · rstd[b], rstd[b] = 1/sqrt(mean_k x[b,k]² + eps); else x̂ = x.
  //   decode_linear: out (B,N), out[b,n] = residual[b,n] + Σ_k W[n,k] x̂[b,k] (residual (B,N) or undefined: 0)
  virtual void decode_linear(const Tensor& x, const Tensor& w, const Tensor& residual, std::optional<double> norm_eps,
                             Tensor& out) = 0;
  //   decode_swiglu: gate and up (F,K), out (B,F), out[b,f] = silu(Σ_k gate[f,k] x̂[b,k]) · Σ_k up[f,k] x̂[b,k]
  virtual void decode_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, std::optional<double> norm_eps,
                             Tensor& out) = 0;
  //   decode_tpa_factors: a TPA layer's six factor projections of rmsnorm(x) (eps p.norm_eps), RoPE of the
  //   query and key B factors at positions[b], and the key/value factors written into the cache at slot
  //   positions[b] (int32 (B), each in [0, capacity)). W (N,K = d) stacks the projections' rows as
  //     [A_q (H·RQ) | A_k (H·R) | A_v (H·R) | B_v (R·dh) | Q (RQ·dh; plain query heads: H·dh) | B_k (R·dh)]
  //   and with y[b] = W x̂[b] cut into those parts:
  //     a_q (B,H,RQ) = A_q part (q_rank = 0: a_q unused)      q (B,RQ,dh) or (B,H,dh) = rope(Q part)
  //     a_k[b, positions[b]] = A_k part,  a_v[b, positions[b]] = A_v part,  b_v[b, positions[b]] = B_v part
  //     b_k[b, positions[b]] = rope(B_k part)
  //   with the cache as in tpa_decode_attention and rope the spec's half-split RoPE of each row of dh.
  //   The outputs (a_q, q and the cache) share one dtype: x's, or bfloat16 (a bfloat16 cache), each
  //   value then rounded to nearest once, after RoPE. With an embedding (V,K) of x's dtype, the first
  //   layer's step also looks up its input: x[b] = embedding[tokens[b]] (tokens int32 (B), each in
  //   [0, V)) is written first and then used as above; without one (undefined), x is only read.
  struct TPAFactors {
    int64_t batch = 0, d = 0, heads = 0, q_rank = 0, rank = 0, head_dim = 0, capacity = 0;
    double norm_eps = 0;
  };
  virtual void decode_tpa_factors(const TPAFactors& p, Tensor& x, const Tensor& embedding, const Tensor& tokens,
                                  const Tensor& w, const Tensor& positions, Tensor& a_q, Tensor& q, Tensor& a_k,
                                  Tensor& b_k, Tensor& a_v, Tensor& b_v) = 0;
};

// The backend for a device; throws a clear error for CUDA when there is none.
Backend& backend(Device device);
inline Backend& backend_of(const Tensor& t) { return backend(t.device()); }

// The CUDA backend registers a factory at start-up when built in; it is created on first use.
struct BackendFactory {
  bool (*available)();           // a usable GPU is present
  Backend* (*create)(int ordinal);  // on the host's device `ordinal` modulo the number of devices
};
void register_backend_factory(Device device, BackendFactory factory);
bool device_available(Device device);
// Which of the host's devices the backend of `device` uses (0 unless set): a data-parallel rank picks
// its GPU by its local rank. Must be set before the backend is first used.
void set_device_ordinal(Device device, int ordinal);

}  // namespace t6
