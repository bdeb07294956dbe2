// Data movement kernels: fill, strided_copy, cast and scatter_rows, for every dtype (float32, float64, int32,
// bfloat16). fill and strided_copy only move bits, so they work on unsigned words of the element size.
#include <cstring>
#include <type_traits>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

// The element as raw bits: fill and strided_copy never look at values.
template <class Fn>
void dispatch_word(DType dtype, Fn&& fn) {
  switch (dtype_size(dtype)) {
    case 2: fn(uint16_t{}); return;
    case 4: fn(uint32_t{}); return;
    default: fn(uint64_t{}); return;
  }
}

// `value` converted to `dtype` the way the CPU backend does (float → int32 truncates and saturates,
// bfloat16 rounds to nearest even), as the bits of one element.
uint64_t element_bits(DType dtype, double value) {
  uint64_t bits = 0;
  switch (dtype) {
    case DType::F32: {
      const float f = static_cast<float>(value);
      std::memcpy(&bits, &f, 4);
      break;
    }
    case DType::F64: std::memcpy(&bits, &value, 8); break;
    case DType::I32: {
      const int32_t i = value != value           ? 0
                        : value >= 2147483647.0  ? INT32_MAX
                        : value <= -2147483648.0 ? INT32_MIN
                                                 : static_cast<int32_t>(value);
      std::memcpy(&bits, &i, 4);
      break;
    }
    case DType::BF16: bits = float_to_bf16(static_cast<float>(value)); break;
  }
  return bits;
}

constexpr size_t kMaxDims = 8;

// Shape and both sides' strides, passed to the kernel by value.
struct CopyLayout {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t src_strides[kMaxDims];
  int64_t dst_strides[kMaxDims];
};

// Drops size-1 dimensions and merges neighbours that are contiguous with each other on both sides,
// so a transpose of a [B, T, H, dh] tensor becomes a 3-d copy and a contiguous one a 1-d copy.
CopyLayout simplify_layout(const Tensor& src, const Tensor& dst) {
  struct Dim {
    int64_t size, src_stride, dst_stride;
  };
  std::vector<Dim> dims;
  for (int d = 0; d < src.ndim(); ++d) {
    const Dim next{src.shape()[d], src.strides()[d], dst.strides()[d]};
    if (next.size == 1) continue;
    if (!dims.empty() && dims.back().src_stride == next.src_stride * next.size &&
        dims.back().dst_stride == next.dst_stride * next.size) {
      dims.back() = {dims.back().size * next.size, next.src_stride, next.dst_stride};
      continue;
    }
    dims.push_back(next);
  }
  T6_CHECK(dims.size() <= kMaxDims, "cuda strided_copy: a copy between ", shape_str(src.shape()),
           " tensors with strides ", shape_str(src.strides()), " and ", shape_str(dst.strides()), " needs ",
           dims.size(), " dimensions after merging; the CUDA backend handles at most ", kMaxDims,
           ". Make one side contiguous first.");
  CopyLayout layout;
  layout.ndim = static_cast<int>(dims.size());
  for (int d = 0; d < layout.ndim; ++d) {
    layout.shape[d] = dims[d].size;
    layout.src_strides[d] = dims[d].src_stride;
    layout.dst_strides[d] = dims[d].dst_stride;
  }
  return layout;
}

// bfloat16 converts through float32, as on the CPU (which rounds float64 → float32 → bfloat16 too).
template <class To, class From>
__device__ To convert(From x) {
  if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    return static_cast<To>(__bfloat162float(x));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(x));
  } else {
    return static_cast<To>(x);  // float → int32 truncates; the GPU saturates and maps NaN to 0
  }
}

}  // namespace

namespace kernels {

// fill: out[i] = value (core/backend.h), as raw element bits.
template <class Word>
__global__ void fill(Word* out, int64_t n, Word value) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = value;
}

// strided_copy: dst[index] = src[index] for every multi-index (core/backend.h).
template <class Word>
__global__ void strided_copy(const Word* src, Word* dst, int64_t n, CopyLayout layout) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rest = i, s = 0, d = 0;
    for (int dim = layout.ndim - 1; dim >= 0; --dim) {
      const int64_t index = rest % layout.shape[dim];
      rest /= layout.shape[dim];
      s += index * layout.src_strides[dim];
      d += index * layout.dst_strides[dim];
    }
    dst[d] = src[s];
  }
}

// scatter_rows: buffer[b, slots[b], :] = values[b, :] for buffer [B, M, n] (core/backend.h).
template <class Word>
__global__ void scatter_rows(const Word* values, const int32_t* slots, Word* buffer, int64_t rows, int64_t capacity,
                             int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / n;
    buffer[(b * capacity + slots[b]) * n + i % n] = values[i];
  }
}

// cast: dst[i] = src[i] converted (core/backend.h).
template <class From, class To>
__global__ void cast(const From* src, To* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = convert<To>(src[i]);
}

// cast of float32 to bfloat16, the copies of mixed precision (the most frequent cast by far), four
// values per thread: a 16-byte load and an 8-byte store instead of 4- and 2-byte ones, for n4 = n / 4
// groups with 16-byte-aligned src and 8-byte-aligned dst (the caller converts the tail).
__global__ void cast_float_to_bf16_x4(const float4* src, __nv_bfloat16* dst, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n4; i += int64_t{gridDim.x} * blockDim.x)
    store4(dst, i, src[i]);
}

}  // namespace kernels

void CudaBackend::fill(Tensor& out, double value) {
  const auto timing = timer_.time("fill");
  const int64_t n = out.numel();
  if (n == 0) return;
  const uint64_t bits = element_bits(out.dtype(), value);
  if (bits == 0) {
    T6_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, static_cast<size_t>(n) * dtype_size(out.dtype()), stream_));
    return;
  }
  dispatch_word(out.dtype(), [&](auto word) {
    using Word = decltype(word);
    kernels::fill<<<grid_for(n), kThreads, 0, stream_>>>(device_ptr<Word>(out), n, static_cast<Word>(bits));
    T6_CUDA_CHECK_LAUNCH(fill);
  });
}

void CudaBackend::strided_copy(const Tensor& src, Tensor& dst) {
  const auto timing = timer_.time("strided_copy");
  const int64_t n = src.numel();
  if (n == 0) return;
  const CopyLayout layout = simplify_layout(src, dst);
  if (layout.ndim == 0 || (layout.ndim == 1 && layout.src_strides[0] == 1 && layout.dst_strides[0] == 1)) {
    T6_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), static_cast<size_t>(n) * dtype_size(src.dtype()),
                                  cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  dispatch_word(src.dtype(), [&](auto word) {
    using Word = decltype(word);
    kernels::strided_copy<<<grid_for(n), kThreads, 0, stream_>>>(device_ptr<const Word>(src), device_ptr<Word>(dst), n,
                                                                 layout);
    T6_CUDA_CHECK_LAUNCH(strided_copy);
  });
}

void CudaBackend::cast(const Tensor& src, Tensor& dst) {
  const auto timing = timer_.time("cast");
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.dtype() == DType::F32 && dst.dtype() == DType::BF16 && aligned(src, 16) && aligned(dst, 8) && n >= 4) {
    const int64_t n4 = n / 4, tail = n - 4 * n4;
    kernels::cast_float_to_bf16_x4<<<grid_for(n4), kThreads, 0, stream_>>>(
        device_ptr<const float4>(src), device_ptr<__nv_bfloat16>(dst), n4);
    T6_CUDA_CHECK_LAUNCH(cast_float_to_bf16_x4);
    if (tail > 0) {
      kernels::cast<<<1, kThreads, 0, stream_>>>(device_ptr<const float>(src) + 4 * n4,
                                                 device_ptr<__nv_bfloat16>(dst) + 4 * n4, tail);
      T6_CUDA_CHECK_LAUNCH(cast);
    }
    return;
  }
  dispatch_any(src.dtype(), [&](auto from) {
    dispatch_any(dst.dtype(), [&](auto to) {
      using From = decltype(from);
      using To = decltype(to);
      kernels::cast<<<grid_for(n), kThreads, 0, stream_>>>(device_ptr<const From>(src), device_ptr<To>(dst), n);
      T6_CUDA_CHECK_LAUNCH(cast);
    });
  });
}

void CudaBackend::scatter_rows(const Tensor& values, const Tensor& slots, Tensor& buffer) {
  const auto timing = timer_.time("scatter_rows");
  require_dtype("scatter_rows (slots)", slots, DType::I32);
  const int64_t rows = slots.numel(), n = rows > 0 ? values.numel() / rows : 0;
  T6_CHECK(rows > 0 && n > 0 && values.dtype() == buffer.dtype() && buffer.size(0) == rows &&
               buffer.numel() % (rows * n) == 0,
           "cuda scatter_rows: ", rows, " rows of values ", shape_str(values.shape()), " do not fit the buffer ",
           shape_str(buffer.shape()));
  const int64_t capacity = buffer.numel() / (rows * n);
  dispatch_word(buffer.dtype(), [&](auto word) {
    using Word = decltype(word);
    kernels::scatter_rows<Word><<<grid_for(rows * n), kThreads, 0, stream_>>>(
        device_ptr<const Word>(values), device_ptr<const int32_t>(slots), device_ptr<Word>(buffer), rows, capacity, n);
  });
  T6_CUDA_CHECK_LAUNCH(scatter_rows);
}

}  // namespace t6
