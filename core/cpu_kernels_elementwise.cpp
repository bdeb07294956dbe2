// CPU elementwise kernels: unary maps and their derivatives, broadcasting binary ops, and axpy.
#include <algorithm>
#include <cmath>

#include "core/cpu_kernels.h"

namespace t6::cpu {

namespace {

// For very negative v, exp(−v) overflows to +inf and the quotient is exactly 0 (the true value is
// below the smallest normal float), so no finite input yields NaN or a spurious overflow.
template <class T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
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

}  // namespace

template <class T>
void unary(UnaryOp op, const T* x, T* y, int64_t n, T alpha) {
  const int64_t cheap = kParallelElements, costly = kParallelExpensive;
  switch (op) {
    case UnaryOp::Neg: return map(x, y, n, cheap, [](T v) { return -v; });
    case UnaryOp::Exp: return map(x, y, n, costly, [](T v) { return std::exp(v); });
    case UnaryOp::Log: return map(x, y, n, costly, [](T v) { return std::log(v); });
    case UnaryOp::Sqrt: return map(x, y, n, costly, [](T v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt: return map(x, y, n, costly, [](T v) { return T(1) / std::sqrt(v); });
    case UnaryOp::Sigmoid: return map(x, y, n, costly, [](T v) { return sigmoid(v); });
    case UnaryOp::Silu: return map(x, y, n, costly, [](T v) { return v * sigmoid(v); });
    case UnaryOp::Scale: return map(x, y, n, cheap, [alpha](T v) { return alpha * v; });
    case UnaryOp::AddScalar: return map(x, y, n, cheap, [alpha](T v) { return v + alpha; });
  }
}

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

template <class T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n) {
#pragma omp parallel for simd if (parallel : n > kParallelExpensive)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
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

namespace {

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

}  // namespace

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

#define T6_CPU_INSTANTIATE(T)                                                             \
  template void unary<T>(UnaryOp, const T*, T*, int64_t, T);                              \
  template void unary_backward<T>(UnaryOp, const T*, const T*, const T*, T*, int64_t, T); \
  template void binary<T>(BinaryOp, const T*, int64_t, const T*, int64_t, T*, int64_t);   \
  template void axpy<T>(T, const T*, T*, int64_t);                                        \
  template void swiglu_forward<T>(const T*, const T*, T*, int64_t);                       \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t);
T6_CPU_INSTANTIATE(float)
T6_CPU_INSTANTIATE(double)
#undef T6_CPU_INSTANTIATE

}  // namespace t6::cpu
