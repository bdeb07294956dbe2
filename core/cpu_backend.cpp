// The CPU implementation of Backend: 64-byte-aligned host memory, and every kernel of backend.h,
// each one a check of its operands (cheap, before any loop runs) followed by a dtype dispatch into
// the pointer-level kernels of core/cpu_kernels.h.
#include "core/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/cpu_kernels.h"

namespace t6 {

namespace {

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

[[noreturn]] void unsupported(const char* kernel, DType dtype, const char* supported) {
  throw Error(cat("cpu ", kernel, ": dtype ", dtype_name(dtype), " is not supported on the CPU (", supported, ")"));
}

// Calls f(T{}) with T the element type of a float32 or float64 tensor.
template <class F>
void dispatch_float(const char* kernel, DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F64: return f(double{});
    default: unsupported(kernel, dtype, "float32 and float64 are");
  }
}

// Calls f(T{}) with T the element type of any dtype.
template <class F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F64: return f(double{});
    case DType::I32: return f(int32_t{});
    case DType::BF16: return f(cpu::BF16{});
  }
}

// The kernel contract of backend.h, checked once per call so that a caller's mistake is an Error
// instead of a read past the end of a buffer: every operand defined, on the CPU, contiguous, of the
// expected dtype and (where the kernel needs it) element count.
struct Operand {
  const char* name;
  const Tensor& tensor;
};

void expect(const char* kernel, std::initializer_list<Operand> operands, DType dtype, int64_t numel = -1) {
  for (const Operand& o : operands) {
    T6_CHECK(o.tensor.defined(), "cpu ", kernel, ": ", o.name, " is an undefined tensor");
    T6_CHECK(o.tensor.device() == Device::CPU, "cpu ", kernel, ": ", o.name, " is on ",
             device_name(o.tensor.device()), "; every operand must be on the CPU");
    T6_CHECK(o.tensor.is_contiguous(), "cpu ", kernel, ": ", o.name, " of shape ", shape_str(o.tensor.shape()),
             " is not contiguous; pass contiguous_data()");
    T6_CHECK(o.tensor.dtype() == dtype, "cpu ", kernel, ": ", o.name, " is ", dtype_name(o.tensor.dtype()),
             ", expected ", dtype_name(dtype));
    T6_CHECK(numel < 0 || o.tensor.numel() == numel, "cpu ", kernel, ": ", o.name, " of shape ",
             shape_str(o.tensor.shape()), " has ", o.tensor.numel(), " elements, expected ", numel);
  }
}

// The length of the rows a row kernel works on: the last axis.
int64_t row_length(const Tensor& t) { return t.ndim() == 0 ? 1 : t.shape().back(); }
int64_t row_count(const Tensor& t) { return row_length(t) == 0 ? 0 : t.numel() / row_length(t); }

void check_ids(const char* kernel, const Tensor& ids, int64_t limit) {
  const int32_t* p = ptr<const int32_t>(ids);
  for (int64_t i = 0; i < ids.numel(); ++i)
    T6_CHECK(p[i] >= 0 && p[i] < limit, "cpu ", kernel, ": id ", p[i], " at position ", i, " is outside [0, ", limit, ")");
}

// The highest element index one operand of a batched gemm reaches must lie inside its tensor.
void check_gemm_operand(const char* name, const Tensor& t, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                        int64_t batch) {
  T6_CHECK(ld >= std::max<int64_t>(1, cols) && ld <= INT_MAX, "cpu gemm: leading dimension ", ld, " of ", name,
           " must be at least its row length ", cols, " (and fit in int)");
  T6_CHECK(stride >= 0, "cpu gemm: negative batch stride ", stride, " for ", name);
  if (rows == 0 || cols == 0) return;
  const int64_t last = (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  T6_CHECK(last < t.numel(), "cpu gemm: ", name, " of shape ", shape_str(t.shape()), " is too small for ", batch,
           " matrices of ", rows, "×", cols, " with leading dimension ", ld, " and batch stride ", stride);
}

std::string openblas_short_name() {
  std::istringstream config(openblas_get_config());  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH …"
  std::string name, version;
  config >> name >> version;
  return cat(name, " ", version, " ", openblas_get_corename());
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() { cpu_threads(); }  // applies the thread defaults before the first kernel runs

  Device device() const override { return Device::CPU; }
  std::string describe() const override {
    const int threads = cpu_threads();
    return cat("cpu (", openblas_short_name(), ", ", threads, threads == 1 ? " thread)" : " threads)");
  }

  // --- memory ------------------------------------------------------------------------------------
  void* allocate(size_t bytes) override {
    // 64-byte alignment for whole-cache-line vector loads; zero bytes still get a unique pointer.
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    T6_CHECK(p != nullptr, "cpu: out of memory allocating ", bytes, " bytes (", current_ / (1 << 20),
             " MiB already in use)");
    const size_t now = current_ += bytes;
    size_t peak = peak_;
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    std::free(p);
    current_ -= bytes;
  }
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(host_dst, device_src, bytes);
  }
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(device_dst, host_src, bytes);
  }
  void synchronize() override {}
  MemoryStats memory_stats() const override {
    // No caching allocator: everything held is in use.
    return {current_.load(), peak_.load(), current_.load()};
  }

  // --- data movement -----------------------------------------------------------------------------
  void fill(Tensor& out, double value) override {
    expect("fill", {{"out", out}}, out.dtype());
    dispatch_any(out.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::fill(ptr<T>(out), out.numel(), value);
    });
  }

  void strided_copy(const Tensor& src, Tensor& dst) override {
    T6_CHECK(src.shape() == dst.shape() && src.dtype() == dst.dtype(), "cpu strided_copy: source ",
             shape_str(src.shape()), " ", dtype_name(src.dtype()), " and destination ", shape_str(dst.shape()), " ",
             dtype_name(dst.dtype()), " differ");
    T6_CHECK(src.device() == Device::CPU && dst.device() == Device::CPU,
             "cpu strided_copy: both tensors must be on the CPU");
    cpu::strided_copy(src.raw_data(), src.strides().data(), dst.raw_data(), dst.strides().data(),
                      src.shape().data(), src.ndim(), dtype_size(src.dtype()));
  }

  void cast(const Tensor& src, Tensor& dst) override {
    expect("cast", {{"src", src}}, src.dtype(), dst.numel());
    expect("cast", {{"dst", dst}}, dst.dtype());
    dispatch_any(src.dtype(), [&](auto from) {
      dispatch_any(dst.dtype(), [&](auto to) {
        using From = decltype(from);
        using To = decltype(to);
        cpu::cast(ptr<const From>(src), ptr<To>(dst), src.numel());
      });
    });
  }

  // --- elementwise -------------------------------------------------------------------------------
  void unary(UnaryOp op, const Tensor& x, Tensor& y, double alpha) override {
    expect("unary", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
    dispatch_float("unary", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::unary(op, ptr<const T>(x), ptr<T>(y), x.numel(), static_cast<T>(alpha));
    });
  }

  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override {
    const int64_t n = gy.numel();
    expect("unary_backward", {{"gy", gy}, {"gx", gx}}, gy.dtype(), n);
    const cpu::UnaryInputs needs = cpu::unary_backward_needs(op);
    if (needs.x) expect("unary_backward", {{"x (the forward input)", x}}, gy.dtype(), n);
    if (needs.y) expect("unary_backward", {{"y (the forward output)", y}}, gy.dtype(), n);
    dispatch_float("unary_backward", gy.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::unary_backward(op, needs.x ? ptr<const T>(x) : nullptr, needs.y ? ptr<const T>(y) : nullptr,
                          ptr<const T>(gy), ptr<T>(gx), n, static_cast<T>(alpha));
    });
  }

  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    expect("binary", {{"a", a}, {"b", b}, {"out", out}}, out.dtype());
    const int64_t n = out.numel(), na = a.numel(), nb = b.numel();
    if (n == 0) return;
    T6_CHECK(na > 0 && nb > 0 && n % na == 0 && n % nb == 0 && std::max(na, nb) % std::min(na, nb) == 0,
             "cpu binary: operands of ", na, " and ", nb, " elements do not broadcast over ", n,
             " (each must repeat a trailing block of the output)");
    dispatch_float("binary", out.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::binary(op, ptr<const T>(a), na, ptr<const T>(b), nb, ptr<T>(out), n);
    });
  }

  void axpy(double alpha, const Tensor& x, Tensor& y) override {
    expect("axpy", {{"x", x}, {"y", y}}, y.dtype(), y.numel());
    dispatch_float("axpy", y.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::axpy(static_cast<T>(alpha), ptr<const T>(x), ptr<T>(y), y.numel());
    });
  }

  // --- reductions --------------------------------------------------------------------------------
  void sum_axis(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner) override {
    T6_CHECK(outer >= 0 && n >= 0 && inner >= 0, "cpu sum_axis: negative extent in [", outer, ", ", n, ", ", inner, "]");
    expect("sum_axis", {{"x", x}}, x.dtype(), outer * n * inner);
    expect("sum_axis", {{"y", y}}, x.dtype(), outer * inner);
    dispatch_float("sum_axis", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::sum_axis(ptr<const T>(x), ptr<T>(y), outer, n, inner);
    });
  }

  double sum_of_squares(const std::vector<Tensor>& tensors) override {
    double total = 0.0;
    for (const Tensor& t : tensors) {
      expect("sum_of_squares", {{"tensor", t}}, t.dtype());
      dispatch_float("sum_of_squares", t.dtype(), [&](auto e) {
        using T = decltype(e);
        total += cpu::sum_of_squares(ptr<const T>(t), t.numel());
      });
    }
    return total;
  }

  // --- matrix multiply ---------------------------------------------------------------------------
  void gemm(const Gemm& g, const Tensor& a, const Tensor& b, Tensor& c) override {
    T6_CHECK(c.dtype() != DType::BF16 && a.dtype() != DType::BF16,
             "cpu gemm: bfloat16 matrices are not supported on the CPU (bfloat16 matmul is the CUDA backend's "
             "mixed-precision path); cast the operands to float32");
    expect("gemm", {{"a", a}, {"b", b}, {"c", c}}, c.dtype());
    T6_CHECK(g.m >= 0 && g.n >= 0 && g.k >= 0 && g.batch >= 0 && g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX,
             "cpu gemm: sizes m=", g.m, " n=", g.n, " k=", g.k, " batch=", g.batch, " must be non-negative and fit in int");
    if (g.m == 0 || g.n == 0 || g.batch == 0) return;
    check_gemm_operand("a", a, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a, g.batch);
    check_gemm_operand("b", b, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b, g.batch);
    check_gemm_operand("c", c, g.m, g.n, g.ldc, g.stride_c, g.batch);
    dispatch_float("gemm", c.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::gemm(g, ptr<const T>(a), ptr<const T>(b), ptr<T>(c));
    });
  }

  // --- fused neural-network kernels --------------------------------------------------------------
  void softmax_forward(const Tensor& x, Tensor& y, double scale, bool causal, int64_t tq) override {
    expect("softmax_forward", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
    const int64_t n = row_length(x), rows = row_count(x);
    T6_CHECK(!causal || (tq > 0 && rows % tq == 0), "cpu softmax_forward: causal mask with tq = ", tq,
             " does not divide the ", rows, " rows");
    dispatch_float("softmax_forward", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::softmax_forward(ptr<const T>(x), ptr<T>(y), rows, n, static_cast<T>(scale), causal, tq);
    });
  }

  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, double scale) override {
    expect("softmax_backward", {{"y", y}, {"gy", gy}, {"gx", gx}}, y.dtype(), y.numel());
    dispatch_float("softmax_backward", y.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::softmax_backward(ptr<const T>(y), ptr<const T>(gy), ptr<T>(gx), row_count(y), row_length(y),
                            static_cast<T>(scale));
    });
  }

  void log_softmax_forward(const Tensor& x, Tensor& y) override {
    expect("log_softmax_forward", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
    dispatch_float("log_softmax_forward", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::log_softmax_forward(ptr<const T>(x), ptr<T>(y), row_count(x), row_length(x));
    });
  }

  void log_softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx) override {
    expect("log_softmax_backward", {{"y", y}, {"gy", gy}, {"gx", gx}}, y.dtype(), y.numel());
    dispatch_float("log_softmax_backward", y.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::log_softmax_backward(ptr<const T>(y), ptr<const T>(gy), ptr<T>(gx), row_count(y), row_length(y));
    });
  }

  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse,
                             Tensor& divisor) override {
    const int64_t vocab = row_length(logits), rows = row_count(logits);
    expect("cross_entropy_forward", {{"logits", logits}}, logits.dtype());
    expect("cross_entropy_forward", {{"targets", targets}}, DType::I32, rows);
    expect("cross_entropy_forward", {{"losses", losses}, {"lse", lse}}, logits.dtype(), rows);
    expect("cross_entropy_forward", {{"divisor", divisor}}, logits.dtype(), 1);
    cpu::CrossEntropyCounts counts;
    dispatch_float("cross_entropy_forward", logits.dtype(), [&](auto t) {
      using T = decltype(t);
      counts = cpu::cross_entropy_forward(ptr<const T>(logits), ptr<const int32_t>(targets), ptr<T>(losses),
                                          ptr<T>(lse), rows, vocab);
      *ptr<T>(divisor) = static_cast<T>(std::max<int64_t>(1, counts.counted));
    });
    // The data's mistake, not the caller's: named in the words of the cross_entropy op (backend.h).
    T6_CHECK(counts.out_of_range == 0, "cross_entropy: ", counts.out_of_range, " target ids lie outside [-1, ", vocab,
             "); every target must be a token id below vocab_size or -1 (ignored)");
  }

  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                              const Tensor& grad_losses, Tensor& glogits) override {
    const int64_t vocab = row_length(logits), rows = row_count(logits);
    expect("cross_entropy_backward", {{"logits", logits}, {"glogits", glogits}}, logits.dtype(), logits.numel());
    expect("cross_entropy_backward", {{"targets", targets}}, DType::I32, rows);
    expect("cross_entropy_backward", {{"lse", lse}, {"grad_losses", grad_losses}}, logits.dtype(), rows);
    dispatch_float("cross_entropy_backward", logits.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::cross_entropy_backward(ptr<const T>(logits), ptr<const int32_t>(targets), ptr<const T>(lse),
                                  ptr<const T>(grad_losses), ptr<T>(glogits), rows, vocab);
    });
  }

  void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) override {
    T6_CHECK(weight.ndim() == 2, "cpu embedding_forward: weight must be [rows, dim], got ", shape_str(weight.shape()));
    const int64_t dim = weight.size(1);
    expect("embedding_forward", {{"ids", ids}}, DType::I32);
    expect("embedding_forward", {{"weight", weight}}, weight.dtype());
    expect("embedding_forward", {{"out", out}}, weight.dtype(), ids.numel() * dim);
    check_ids("embedding_forward", ids, weight.size(0));
    dispatch_float("embedding_forward", weight.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::embedding_forward(ptr<const T>(weight), ptr<const int32_t>(ids), ptr<T>(out), ids.numel(), dim);
    });
  }

  void embedding_backward(const Tensor& ids, const Tensor& gout, Tensor& gweight) override {
    T6_CHECK(gweight.ndim() == 2, "cpu embedding_backward: gweight must be [rows, dim], got ",
             shape_str(gweight.shape()));
    const int64_t dim = gweight.size(1);
    expect("embedding_backward", {{"ids", ids}}, DType::I32);
    expect("embedding_backward", {{"gweight", gweight}}, gweight.dtype());
    expect("embedding_backward", {{"gout", gout}}, gweight.dtype(), ids.numel() * dim);
    check_ids("embedding_backward", ids, gweight.size(0));
    dispatch_float("embedding_backward", gweight.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::embedding_backward(ptr<const int32_t>(ids), ptr<const T>(gout), ptr<T>(gweight), ids.numel(), dim);
    });
  }

  void rms_norm_forward(const Tensor& x, Tensor& y, Tensor& rstd, double eps) override {
    const int64_t d = row_length(x), rows = row_count(x);
    expect("rms_norm_forward", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
    expect("rms_norm_forward", {{"rstd", rstd}}, x.dtype(), rows);
    dispatch_float("rms_norm_forward", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::rms_norm_forward(ptr<const T>(x), ptr<T>(y), ptr<T>(rstd), rows, d, eps);
    });
  }

  void rms_norm_backward(const Tensor& x, const Tensor& rstd, const Tensor& gy, Tensor& gx) override {
    const int64_t d = row_length(x), rows = row_count(x);
    expect("rms_norm_backward", {{"x", x}, {"gy", gy}, {"gx", gx}}, x.dtype(), x.numel());
    expect("rms_norm_backward", {{"rstd", rstd}}, x.dtype(), rows);
    dispatch_float("rms_norm_backward", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::rms_norm_backward(ptr<const T>(x), ptr<const T>(rstd), ptr<const T>(gy), ptr<T>(gx), rows, d);
    });
  }

  void rope(const Tensor& x, const Tensor& positions, Tensor& y, int64_t inner, bool inverse) override {
    const int64_t dh = row_length(x), P = positions.numel();
    expect("rope", {{"positions", positions}}, DType::I32);
    expect("rope", {{"x", x}, {"y", y}}, x.dtype(), P * inner * dh);
    T6_CHECK(dh % 2 == 0, "cpu rope: head dimension ", dh, " must be even (RoPE rotates its two halves)");
    dispatch_float("rope", x.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::rope(ptr<const T>(x), ptr<const int32_t>(positions), ptr<T>(y), P, inner, dh, inverse);
    });
  }

  void scatter_rows(const Tensor& values, const Tensor& slots, Tensor& buffer) override {
    const int64_t rows = slots.numel(), n = rows > 0 ? values.numel() / rows : 0;
    expect("scatter_rows", {{"slots", slots}}, DType::I32);
    expect("scatter_rows", {{"values", values}}, buffer.dtype(), rows * n);
    expect("scatter_rows", {{"buffer", buffer}}, buffer.dtype());
    T6_CHECK(buffer.ndim() >= 2 && buffer.size(0) == rows && n > 0 && buffer.numel() % (rows * n) == 0,
             "cpu scatter_rows: buffer ", shape_str(buffer.shape()), " does not hold ", rows, " rows of ", n);
    const int64_t capacity = buffer.numel() / (rows * n);
    dispatch_float("scatter_rows", buffer.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::scatter_rows(ptr<const T>(values), ptr<const int32_t>(slots), ptr<T>(buffer), rows, capacity, n);
    });
  }

  void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) override {
    expect("swiglu_forward", {{"gate", gate}, {"up", up}, {"out", out}}, gate.dtype(), gate.numel());
    dispatch_float("swiglu_forward", gate.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::swiglu_forward(ptr<const T>(gate), ptr<const T>(up), ptr<T>(out), gate.numel());
    });
  }

  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& gout, Tensor& ggate, Tensor& gup) override {
    expect("swiglu_backward", {{"gate", gate}, {"up", up}, {"gout", gout}, {"ggate", ggate}, {"gup", gup}},
           gate.dtype(), gate.numel());
    dispatch_float("swiglu_backward", gate.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::swiglu_backward(ptr<const T>(gate), ptr<const T>(up), ptr<const T>(gout), ptr<T>(ggate), ptr<T>(gup),
                           gate.numel());
    });
  }

  void tpa_product_forward(const TPAProduct& p, const Tensor& a, const Tensor& b, Tensor& out) override {
    expect("tpa_product_forward", {{"a", a}}, a.dtype(), p.tokens * p.heads * p.rank);
    expect("tpa_product_forward", {{"b", b}}, a.dtype(), p.tokens * p.rank * p.head_dim);
    expect("tpa_product_forward", {{"out", out}}, a.dtype(), p.tokens * p.heads * p.head_dim);
    dispatch_float("tpa_product_forward", a.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::tpa_product_forward(p, ptr<const T>(a), ptr<const T>(b), ptr<T>(out));
    });
  }

  void tpa_product_backward(const TPAProduct& p, const Tensor& a, const Tensor& b, const Tensor& gout, Tensor& ga,
                            Tensor& gb) override {
    expect("tpa_product_backward", {{"a", a}, {"ga", ga}}, a.dtype(), p.tokens * p.heads * p.rank);
    expect("tpa_product_backward", {{"b", b}, {"gb", gb}}, a.dtype(), p.tokens * p.rank * p.head_dim);
    expect("tpa_product_backward", {{"gout", gout}}, a.dtype(), p.tokens * p.heads * p.head_dim);
    dispatch_float("tpa_product_backward", a.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::tpa_product_backward(p, ptr<const T>(a), ptr<const T>(b), ptr<const T>(gout), ptr<T>(ga), ptr<T>(gb));
    });
  }

  void flash_attention_forward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                               Tensor& lse) override {
    const int64_t q_elements = p.batch * p.q_len * p.heads * p.head_dim;
    const int64_t kv_elements = p.batch * p.kv_len * p.kv_heads * p.head_dim;
    expect("flash_attention_forward", {{"q", q}, {"out", out}}, q.dtype(), q_elements);
    expect("flash_attention_forward", {{"k", k}, {"v", v}}, q.dtype(), kv_elements);
    expect("flash_attention_forward", {{"lse", lse}}, q.dtype(), p.batch * p.heads * p.q_len);
    dispatch_float("flash_attention_forward", q.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::flash_attention_forward(p, ptr<const T>(q), ptr<const T>(k), ptr<const T>(v), ptr<T>(out), ptr<T>(lse));
    });
  }

  void flash_attention_backward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& out, const Tensor& lse, const Tensor& gout, Tensor& gq, Tensor& gk,
                                Tensor& gv) override {
    const int64_t q_elements = p.batch * p.q_len * p.heads * p.head_dim;
    const int64_t kv_elements = p.batch * p.kv_len * p.kv_heads * p.head_dim;
    expect("flash_attention_backward", {{"q", q}, {"out", out}, {"gout", gout}, {"gq", gq}}, q.dtype(), q_elements);
    expect("flash_attention_backward", {{"k", k}, {"v", v}, {"gk", gk}, {"gv", gv}}, q.dtype(), kv_elements);
    expect("flash_attention_backward", {{"lse", lse}}, q.dtype(), p.batch * p.heads * p.q_len);
    dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
      using T = decltype(t);
      cpu::flash_attention_backward(p, ptr<const T>(q), ptr<const T>(k), ptr<const T>(v), ptr<const T>(out),
                                    ptr<const T>(lse), ptr<const T>(gout), ptr<T>(gq), ptr<T>(gk), ptr<T>(gv));
    });
  }

  void adamw_step(std::vector<AdamWSlot>& slots, const AdamWHyper& h) override {
    T6_CHECK(h.step >= 1, "cpu adamw_step: step ", h.step, " must count from 1 (bias correction divides by 1 − β^step)");
    for (AdamWSlot& s : slots) {
      expect("adamw_step", {{"param", s.param}}, DType::F32);
      expect("adamw_step", {{"grad", s.grad}, {"exp_avg", s.exp_avg}, {"exp_avg_sq", s.exp_avg_sq}}, DType::F32,
             s.param.numel());
    }
    for (AdamWSlot& s : slots)
      cpu::adamw_step(ptr<float>(s.param), ptr<const float>(s.grad), ptr<float>(s.exp_avg), ptr<float>(s.exp_avg_sq),
                      s.param.numel(), h);
  }

 private:
  std::atomic<size_t> current_{0}, peak_{0};
};

}  // namespace

// Never destroyed: tensors released during static destruction still free through it.
Backend& cpu_backend() {
  static CpuBackend* instance = new CpuBackend;
  return *instance;
}

}  // namespace t6
