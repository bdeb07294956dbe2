// Elementwise kernels: unary, unary_backward, binary (with trailing broadcasting), axpy and SwiGLU's
// fused gate, for float32 and float64 (SwiGLU may also write bfloat16 from float32, for the next
// product under mixed precision). Grid-stride loops over 64-bit indices; outputs may alias inputs.
// The busiest of them during training (same-size binary ops and SwiGLU, float32) also have `_x4`
// versions that move four values per thread: they are bound by memory bandwidth, which 16-byte
// accesses use better than 4-byte ones.
#include <algorithm>

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

// binary on float32 operands of one size, four values per thread (16-byte loads and stores): the
// residual adds and gradient sums of training, the most frequent binary by far. n4 = n / 4; the
// caller handles the tail.
__global__ void binary_x4(BinaryOp op, const float4* a, const float4* b, float4* out, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n4; i += int64_t{gridDim.x} * blockDim.x) {
    const float4 u = a[i], v = b[i];
    float4 r;
    switch (op) {
      case BinaryOp::Add: r = make_float4(u.x + v.x, u.y + v.y, u.z + v.z, u.w + v.w); break;
      case BinaryOp::Sub: r = make_float4(u.x - v.x, u.y - v.y, u.z - v.z, u.w - v.w); break;
      case BinaryOp::Mul: r = make_float4(u.x * v.x, u.y * v.y, u.z * v.z, u.w * v.w); break;
      case BinaryOp::Div: r = make_float4(u.x / v.x, u.y / v.y, u.z / v.z, u.w / v.w); break;
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

// swiglu_forward: out = silu(gate) · up (core/backend.h), for one value.
template <class T>
__device__ T swiglu_value(T gate, T up) {
  return gate * sigmoid(gate) * up;
}

// swiglu_backward for one value: the gradients of both inputs.
template <class T>
__device__ void swiglu_gradients(T gate, T up, T gout, T& ggate, T& gup) {
  const T s = sigmoid(gate);
  ggate = gout * up * s * (T(1) + gate * (T(1) - s));  // d/dg (g·σ(g)) = σ(g)(1 + g(1 − σ(g)))
  gup = gout * gate * s;                                // d out / d up = silu(gate)
}

// out is of the inputs' type, or bfloat16 for float32 inputs (mixed precision's input of c_proj).
template <class T, class Out>
__global__ void swiglu_forward(const T* gate, const T* up, Out* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = static_cast<Out>(swiglu_value(gate[i], up[i]));
}

template <class T>
__global__ void swiglu_backward(const T* gate, const T* up, const T* gout, T* ggate, T* gup, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    swiglu_gradients(gate[i], up[i], gout[i], ggate[i], gup[i]);
}

// The same, four float32 values per thread (16-byte loads and stores) over n4 = n / 4 groups.
template <class Out>
__global__ void swiglu_forward_x4(const float4* gate, const float4* up, Out* out, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n4; i += int64_t{gridDim.x} * blockDim.x) {
    const float4 g = gate[i], u = up[i];
    store4(out, i, make_float4(swiglu_value(g.x, u.x), swiglu_value(g.y, u.y), swiglu_value(g.z, u.z),
                               swiglu_value(g.w, u.w)));
  }
}

__global__ void swiglu_backward_x4(const float4* gate, const float4* up, const float4* gout, float4* ggate,
                                   float4* gup, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n4; i += int64_t{gridDim.x} * blockDim.x) {
    const float4 g = gate[i], u = up[i], go = gout[i];
    float4 gg, gu;
    swiglu_gradients(g.x, u.x, go.x, gg.x, gu.x);
    swiglu_gradients(g.y, u.y, go.y, gg.y, gu.y);
    swiglu_gradients(g.z, u.z, go.z, gg.z, gu.z);
    swiglu_gradients(g.w, u.w, go.w, gg.w, gu.w);
    ggate[i] = gg, gup[i] = gu;
  }
}

}  // namespace kernels

namespace {

// Whether every tensor's data starts on 16 bytes, as the float4 kernels need.
bool vector_aligned(std::initializer_list<const Tensor*> tensors) {
  return std::all_of(tensors.begin(), tensors.end(), [](const Tensor* t) { return aligned(*t, 16); });
}

}  // namespace

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
  if (out.dtype() == DType::F32 && a.numel() == n && b.numel() == n && vector_aligned({&a, &b, &out}) && n >= 4) {
    const int64_t n4 = n / 4, done = 4 * n4;
    kernels::binary_x4<<<grid_for(n4), kThreads, 0, stream_>>>(
        op, device_ptr<const float4>(a), device_ptr<const float4>(b), device_ptr<float4>(out), n4);
    T6_CUDA_CHECK_LAUNCH(binary_x4);
    if (done < n) {
      kernels::binary<<<1, kThreads, 0, stream_>>>(op, device_ptr<const float>(a) + done, n - done,
                                                   device_ptr<const float>(b) + done, n - done,
                                                   device_ptr<float>(out) + done, n - done);
      T6_CUDA_CHECK_LAUNCH(binary);
    }
    return;
  }
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
  // float32 inputs: four values per thread where aligned, into float32 or bfloat16
  const auto float_inputs = [&](auto* o) {
    if (n % 4 == 0 && vector_aligned({&gate, &up}) && aligned(out, 4 * dtype_size(out.dtype()))) {
      kernels::swiglu_forward_x4<<<grid_for(n / 4), kThreads, 0, stream_>>>(
          device_ptr<const float4>(gate), device_ptr<const float4>(up), o, n / 4);
      T6_CUDA_CHECK_LAUNCH(swiglu_forward_x4);
    } else {
      kernels::swiglu_forward<<<grid_for(n), kThreads, 0, stream_>>>(device_ptr<const float>(gate),
                                                                     device_ptr<const float>(up), o, n);
      T6_CUDA_CHECK_LAUNCH(swiglu_forward);
    }
  };
  if (out.dtype() == DType::BF16) {
    require_dtype("swiglu_forward (gate)", gate, DType::F32);
    return float_inputs(device_ptr<__nv_bfloat16>(out));
  }
  if (out.dtype() == DType::F32) return float_inputs(device_ptr<float>(out));
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
  if (gout.dtype() == DType::F32 && n % 4 == 0 && vector_aligned({&gate, &up, &gout, &ggate, &gup})) {
    kernels::swiglu_backward_x4<<<grid_for(n / 4), kThreads, 0, stream_>>>(
        device_ptr<const float4>(gate), device_ptr<const float4>(up), device_ptr<const float4>(gout),
        device_ptr<float4>(ggate), device_ptr<float4>(gup), n / 4);
    T6_CUDA_CHECK_LAUNCH(swiglu_backward_x4);
    return;
  }
  dispatch_float("swiglu_backward", gout.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::swiglu_backward<<<grid_for(n), kThreads, 0, stream_>>>(
        device_ptr<const T>(gate), device_ptr<const T>(up), device_ptr<const T>(gout), device_ptr<T>(ggate),
        device_ptr<T>(gup), n);
    T6_CUDA_CHECK_LAUNCH(swiglu_backward);
  });
}

}  // namespace t6
