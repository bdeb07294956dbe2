// Elementwise kernels: unary, unary_backward, binary (with trailing broadcasting), axpy and SwiGLU's
// fused gate, for float32 and float64 (SwiGLU may also write bfloat16 from float32). Outputs may alias
// inputs.
#include <algorithm>
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// For very negative v, exp(−v) overflows to +inf and the quotient is exactly 0 (the true value is
// below the smallest normal float), so no finite input yields NaN or a spurious overflow.
template <class T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + exp_fast(-v));
}

// y[i] = f(x[i])
template <class T, class F>
void map(const T* x, T* y, int64_t n, int64_t parallel_from, F f) {
#pragma omp parallel for simd if (parallel : n > parallel_from)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// out[i] = f(a[i], b[i])
template <class T, class F>
void zip(const T* a, const T* b, T* out, int64_t n, int64_t parallel_from, F f) {
#pragma omp parallel for simd if (parallel : n > parallel_from)
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
}

template <class T>
void unary(UnaryOp op, const T* x, T* y, int64_t n, T alpha) {
  const int64_t cheap = kParallelElements, costly = kParallelExpensive;
  switch (op) {
    case UnaryOp::Neg: return map(x, y, n, cheap, [](T v) { return -v; });
    case UnaryOp::Exp: return map(x, y, n, costly, [](T v) { return exp_fast(v); });
    case UnaryOp::Log: return map(x, y, n, costly, [](T v) { return std::log(v); });
    case UnaryOp::Sqrt: return map(x, y, n, costly, [](T v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt: return map(x, y, n, costly, [](T v) { return T(1) / std::sqrt(v); });
    case UnaryOp::Sigmoid: return map(x, y, n, costly, [](T v) { return sigmoid(v); });
    case UnaryOp::Silu: return map(x, y, n, costly, [](T v) { return v * sigmoid(v); });
    case UnaryOp::Scale: return map(x, y, n, cheap, [alpha](T v) { return alpha * v; });
    case UnaryOp::AddScalar: return map(x, y, n, cheap, [alpha](T v) { return v + alpha; });
  }
}

// Which of x (the forward input) and y (the forward output) the derivative of `op` reads; the other
// may be undefined.
struct UnaryInputs {
  bool x, y;
};

UnaryInputs unary_backward_needs(UnaryOp op) {
  switch (op) {
    case UnaryOp::Log:
    case UnaryOp::Silu: return {true, false};
    case UnaryOp::Exp:
    case UnaryOp::Sqrt:
    case UnaryOp::Rsqrt:
    case UnaryOp::Sigmoid: return {false, true};
    case UnaryOp::Neg:
    case UnaryOp::Scale:
    case UnaryOp::AddScalar: return {false, false};
  }
  return {false, false};
}

template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha) {
  const int64_t cheap = kParallelElements, costly = kParallelExpensive;
  switch (op) {
    case UnaryOp::Neg: return map(gy, gx, n, cheap, [](T g) { return -g; });
    case UnaryOp::Exp: return zip(gy, y, gx, n, cheap, [](T g, T out) { return g * out; });
    case UnaryOp::Log: return zip(gy, x, gx, n, costly, [](T g, T in) { return g / in; });
    case UnaryOp::Sqrt: return zip(gy, y, gx, n, costly, [](T g, T out) { return g / (T(2) * out); });
    case UnaryOp::Rsqrt:
      return zip(gy, y, gx, n, cheap, [](T g, T out) { return -g * out * out * out / T(2); });
    case UnaryOp::Sigmoid: return zip(gy, y, gx, n, cheap, [](T g, T out) { return g * out * (T(1) - out); });
    case UnaryOp::Silu:
      return zip(gy, x, gx, n, costly, [](T g, T in) {
        const T s = sigmoid(in);
        return g * (s + in * s * (T(1) - s));
      });
    case UnaryOp::Scale: return map(gy, gx, n, cheap, [alpha](T g) { return alpha * g; });
    case UnaryOp::AddScalar: return map(gy, gx, n, cheap, [](T g) { return g; });
  }
}

// out of the inputs' type, or bfloat16 bits for float32 inputs (mixed precision's input of c_proj)
template <class T, class Out>
void swiglu_forward(const T* gate, const T* up, Out* out, int64_t n) {
#pragma omp parallel for simd if (parallel : n > kParallelExpensive)
  for (int64_t i = 0; i < n; ++i) out[i] = narrow<Out>(gate[i] * sigmoid(gate[i]) * up[i]);
}

template <class T>
void swiglu_backward(const T* gate, const T* up, const T* gout, T* ggate, T* gup, int64_t n) {
#pragma omp parallel for simd if (parallel : n > kParallelExpensive)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(gate[i]);
    // forward: out = gate·σ(gate)·up, and d/dg (g·σ(g)) = σ(g)·(1 + g·(1 − σ(g)))
    ggate[i] = gout[i] * up[i] * s * (T(1) + gate[i] * (T(1) - s));
    gup[i] = gout[i] * gate[i] * s;  // d out / d up = silu(gate)
  }
}

// out viewed as [rows, len]: row r is out[r·len, (r+1)·len). An operand that "walks" supplies one
// value per column, starting at its own offset (r·len) mod its size; one that does not is a scalar.
template <bool AWalks, bool BWalks, class T, class F>
void broadcast_rows(const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t rows, int64_t len, F f) {
  if (rows == 1) {  // one long row: split it across threads
#pragma omp parallel for simd if (parallel : len > kParallelElements)
    for (int64_t j = 0; j < len; ++j) out[j] = f(a[AWalks ? j : 0], b[BWalks ? j : 0]);
    return;
  }
#pragma omp parallel for if (parallel : rows * len > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t start = r * len;
    const T* ar = a + (AWalks ? start % na : 0);
    const T* br = b + (BWalks ? start % nb : 0);
    T* o = out + start;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) o[j] = f(ar[AWalks ? j : 0], br[BWalks ? j : 0]);
  }
}

// Rows are as long as the shorter period, so inside a row neither operand wraps around: a scalar
// stays fixed, and the longer operand (whose size is a multiple of the shorter's) walks.
template <class T, class F>
void broadcast(const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n, F f) {
  if (na == 1 && nb == 1) return broadcast_rows<false, false>(a, na, b, nb, out, 1, n, f);
  if (na == 1) return broadcast_rows<false, true>(a, na, b, nb, out, n / nb, nb, f);
  if (nb == 1) return broadcast_rows<true, false>(a, na, b, nb, out, n / na, na, f);
  const int64_t len = std::min(na, nb);
  broadcast_rows<true, true>(a, na, b, nb, out, n / len, len, f);
}

// out[i] = a[i % na] op b[i % nb]; needs n % na == n % nb == 0 and min(na, nb) dividing max(na, nb).
template <class T>
void binary(BinaryOp op, const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n) {
  switch (op) {
    case BinaryOp::Add: return broadcast(a, na, b, nb, out, n, [](T u, T v) { return u + v; });
    case BinaryOp::Sub: return broadcast(a, na, b, nb, out, n, [](T u, T v) { return u - v; });
    case BinaryOp::Mul: return broadcast(a, na, b, nb, out, n, [](T u, T v) { return u * v; });
    case BinaryOp::Div: return broadcast(a, na, b, nb, out, n, [](T u, T v) { return u / v; });
  }
}

template <class T>
void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for simd if (parallel : n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& y, double alpha) {
  const auto timing = timer_.time("unary");
  expect("unary", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
  dispatch_float("unary", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::unary(op, ptr<const T>(x), ptr<T>(y), x.numel(), static_cast<T>(alpha));
  });
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                                double alpha) {
  const auto timing = timer_.time("unary_backward");
  const int64_t n = gy.numel();
  expect("unary_backward", {{"gy", gy}, {"gx", gx}}, gy.dtype(), n);
  const UnaryInputs needs = unary_backward_needs(op);
  if (needs.x) expect("unary_backward", {{"x (the forward input)", x}}, gy.dtype(), n);
  if (needs.y) expect("unary_backward", {{"y (the forward output)", y}}, gy.dtype(), n);
  dispatch_float("unary_backward", gy.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::unary_backward(op, needs.x ? ptr<const T>(x) : nullptr, needs.y ? ptr<const T>(y) : nullptr,
                        ptr<const T>(gy), ptr<T>(gx), n, static_cast<T>(alpha));
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto timing = timer_.time("binary");
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

void CpuBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  const auto timing = timer_.time("axpy");
  expect("axpy", {{"x", x}, {"y", y}}, y.dtype(), y.numel());
  dispatch_float("axpy", y.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::axpy(static_cast<T>(alpha), ptr<const T>(x), ptr<T>(y), y.numel());
  });
}

void CpuBackend::swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) {
  const auto timing = timer_.time("swiglu_forward");
  expect("swiglu_forward", {{"gate", gate}, {"up", up}}, gate.dtype(), gate.numel());
  expect("swiglu_forward", {{"out", out}}, out.dtype(), gate.numel());
  dispatch_float_output("swiglu_forward", gate.dtype(), out.dtype(), [&](auto t, auto o) {
    using T = decltype(t);
    cpu::swiglu_forward(ptr<const T>(gate), ptr<const T>(up), ptr<decltype(o)>(out), gate.numel());
  });
}

void CpuBackend::swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& gout, Tensor& ggate,
                                 Tensor& gup) {
  const auto timing = timer_.time("swiglu_backward");
  expect("swiglu_backward", {{"gate", gate}, {"up", up}, {"gout", gout}, {"ggate", ggate}, {"gup", gup}},
         gate.dtype(), gate.numel());
  dispatch_float("swiglu_backward", gate.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::swiglu_backward(ptr<const T>(gate), ptr<const T>(up), ptr<const T>(gout), ptr<T>(ggate), ptr<T>(gup),
                         gate.numel());
  });
}

}  // namespace t6::cpu
