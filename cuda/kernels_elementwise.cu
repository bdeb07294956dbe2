// Elementwise kernels: unary, unary_backward, binary (with trailing broadcasting), axpy and SwiGLU's
// fused gate, for float32 and float64. Grid-stride loops over 64-bit indices; outputs may alias inputs.
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// The same expressions as the CPU twin, so float results agree to rounding.
template <class T>
__device__ T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

// unary: y = op(x); Scale: alpha·x, AddScalar: x + alpha (core/backend.h).
template <class T>
__global__ void unary(UnaryOp op, const T* x, T* y, int64_t n, T alpha) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const T v = x[i];
    T r = v;
    switch (op) {
      case UnaryOp::Neg: r = -v; break;
      case UnaryOp::Exp: r = exp(v); break;
      case UnaryOp::Log: r = log(v); break;
      case UnaryOp::Sqrt: r = sqrt(v); break;
      case UnaryOp::Rsqrt: r = T(1) / sqrt(v); break;
      case UnaryOp::Sigmoid: r = sigmoid(v); break;
      case UnaryOp::Silu: r = v * sigmoid(v); break;
      case UnaryOp::Scale: r = alpha * v; break;
      case UnaryOp::AddScalar: r = v + alpha; break;
    }
    y[i] = r;
  }
}

// unary_backward: gx = gy · op'(x), from x (log, silu) or the forward output y (exp, sqrt, rsqrt,
// sigmoid) (core/backend.h).
template <class T>
__global__ void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const T g = gy[i];
    T r = g;
    switch (op) {
      case UnaryOp::Neg: r = -g; break;
      case UnaryOp::Exp: r = g * y[i]; break;
      case UnaryOp::Log: r = g / x[i]; break;
      case UnaryOp::Sqrt: r = g * T(0.5) / y[i]; break;                  // d√x = 1 / (2√x)
      case UnaryOp::Rsqrt: r = g * T(-0.5) * y[i] * y[i] * y[i]; break;  // d x^-½ = −½ x^-3/2
      case UnaryOp::Sigmoid: r = g * y[i] * (T(1) - y[i]); break;
      case UnaryOp::Silu: {
        const T s = sigmoid(x[i]);
        r = g * (s + x[i] * s * (T(1) - s));
        break;
      }
      case UnaryOp::Scale: r = g * alpha; break;
      case UnaryOp::AddScalar: r = g; break;
    }
    gx[i] = r;
  }
}

// binary: out[i] = a[i % na] op b[i % nb] (core/backend.h).
template <class T>
__global__ void binary(BinaryOp op, const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const T u = a[na == n ? i : i % na], v = b[nb == n ? i : i % nb];
    T r = u;
    switch (op) {
      case BinaryOp::Add: r = u + v; break;
      case BinaryOp::Sub: r = u - v; break;
      case BinaryOp::Mul: r = u * v; break;
      case BinaryOp::Div: r = u / v; break;
    }
    out[i] = r;
  }
}

// axpy: y += alpha · x (core/backend.h).
template <class T>
__global__ void axpy(T alpha, const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] += alpha * x[i];
}

// swiglu_forward: out = silu(gate) · up (core/backend.h).
template <class T>
__global__ void swiglu_forward(const T* gate, const T* up, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// swiglu_backward: the gradients of both inputs from one read of gate, up and gout.
template <class T>
__global__ void swiglu_backward(const T* gate, const T* up, const T* gout, T* ggate, T* gup, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const T g = gate[i], s = sigmoid(g), go = gout[i];
    ggate[i] = go * up[i] * s * (T(1) + g * (T(1) - s));  // d/dg (g·σ(g)) = σ(g)(1 + g(1 − σ(g)))
    gup[i] = go * g * s;                                  // d out / d up = silu(gate)
  }
}

}  // namespace kernels

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& y, double alpha) {
  const auto timing = timer_.time("unary");
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float("unary", x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::unary<<<grid_for(n), kThreads, 0, stream_>>>(op, device_ptr<const T>(x), device_ptr<T>(y), n,
                                                          static_cast<T>(alpha));
    T6_CUDA_CHECK_LAUNCH(unary);
  });
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                                 double alpha) {
  const auto timing = timer_.time("unary_backward");
  const int64_t n = gy.numel();
  if (n == 0) return;
  dispatch_float("unary_backward", gy.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::unary_backward<<<grid_for(n), kThreads, 0, stream_>>>(op, device_ptr<const T>(x), device_ptr<const T>(y),
                                                                   device_ptr<const T>(gy), device_ptr<T>(gx), n,
                                                                   static_cast<T>(alpha));
    T6_CUDA_CHECK_LAUNCH(unary_backward);
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto timing = timer_.time("binary");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float("binary", out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::binary<<<grid_for(n), kThreads, 0, stream_>>>(op, device_ptr<const T>(a), a.numel(),
                                                           device_ptr<const T>(b), b.numel(), device_ptr<T>(out), n);
    T6_CUDA_CHECK_LAUNCH(binary);
  });
}

void CudaBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  const auto timing = timer_.time("axpy");
  const int64_t n = y.numel();
  if (n == 0) return;
  dispatch_float("axpy", y.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::axpy<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<T>(alpha), device_ptr<const T>(x),
                                                         device_ptr<T>(y), n);
    T6_CUDA_CHECK_LAUNCH(axpy);
  });
}

void CudaBackend::swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) {
  const auto timing = timer_.time("swiglu_forward");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float("swiglu_forward", out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::swiglu_forward<<<grid_for(n), kThreads, 0, stream_>>>(device_ptr<const T>(gate), device_ptr<const T>(up),
                                                                   device_ptr<T>(out), n);
    T6_CUDA_CHECK_LAUNCH(swiglu_forward);
  });
}

void CudaBackend::swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& gout, Tensor& ggate,
                                  Tensor& gup) {
  const auto timing = timer_.time("swiglu_backward");
  const int64_t n = gout.numel();
  if (n == 0) return;
  dispatch_float("swiglu_backward", gout.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::swiglu_backward<<<grid_for(n), kThreads, 0, stream_>>>(
        device_ptr<const T>(gate), device_ptr<const T>(up), device_ptr<const T>(gout), device_ptr<T>(ggate),
        device_ptr<T>(gup), n);
    T6_CUDA_CHECK_LAUNCH(swiglu_backward);
  });
}

}  // namespace t6
