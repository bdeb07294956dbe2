// Data movement: fill, strided_copy (the copy that materialises any view), cast and scatter_rows, for
// every dtype (float32, float64, int32, bfloat16). strided_copy only moves bytes, so one loop serves
// every element size.
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// bfloat16 as stored: the upper half of a float32 (core/dtype.h converts).
struct BF16 {
  uint16_t bits;
};

// Calls f(T{}) with T the element type of any dtype.
template <class F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F64: return f(double{});
    case DType::I32: return f(int32_t{});
    case DType::BF16: return f(BF16{});
  }
}

// The value conversions fill and cast share. Float → int32 truncates toward zero, saturates at the
// int32 range and maps NaN to 0 (what a GPU's float-to-int instruction does), so no input is UB.
template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, BF16>) {
    return BF16{float_to_bf16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<T, int32_t>) {
    if (!(v == v)) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return static_cast<int32_t>(v);
  } else {
    return static_cast<T>(v);
  }
}

template <class T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, BF16>) {
    return bf16_to_float(v.bits);
  } else {
    return static_cast<double>(v);
  }
}

template <class T>
void fill(T* out, int64_t n, double value) {
  const T v = from_double<T>(value);
#pragma omp parallel for simd if (parallel : n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

template <class From, class To>
void cast(const From* src, To* dst, int64_t n) {
#pragma omp parallel for simd if (parallel : n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) dst[i] = from_double<To>(to_double(src[i]));
}

struct Dim {
  int64_t size, src_stride, dst_stride;
};

// Drops size-1 axes and merges neighbours that are laid out as one longer axis on both sides, so a
// permuted or sliced view ends up with as few (and as long) axes as its layout allows.
std::vector<Dim> coalesce(const int64_t* shape, const int64_t* src_strides, const int64_t* dst_strides, int ndim) {
  std::vector<Dim> dims;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 1) continue;
    const Dim d{shape[i], src_strides[i], dst_strides[i]};
    if (!dims.empty()) {
      Dim& prev = dims.back();
      if (prev.src_stride == d.src_stride * d.size && prev.dst_stride == d.dst_stride * d.size) {
        prev = {prev.size * d.size, d.src_stride, d.dst_stride};
        continue;
      }
    }
    dims.push_back(d);
  }
  return dims;
}

// Element offsets of row `row` of the outer axes (every axis but the last), on both sides.
void row_offsets(const std::vector<Dim>& dims, int64_t row, int64_t& src, int64_t& dst) {
  src = dst = 0;
  for (size_t i = dims.size() - 1; i-- > 0;) {
    const int64_t index = row % dims[i].size;
    row /= dims[i].size;
    src += index * dims[i].src_stride;
    dst += index * dims[i].dst_stride;
  }
}

// The general case: every row of the last axis copied element by element through its strides.
// Elements move as opaque bytes of their size (a fixed-size memcpy compiles to one load and store),
// so one loop serves every dtype.
template <size_t Bytes>
void copy_rows(const char* src, char* dst, const std::vector<Dim>& dims, int64_t rows) {
  const Dim last = dims.back();
  const int64_t src_step = last.src_stride * static_cast<int64_t>(Bytes);
  const int64_t dst_step = last.dst_stride * static_cast<int64_t>(Bytes);
#pragma omp parallel for if (parallel : rows * last.size > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t s, d;
    row_offsets(dims, r, s, d);
    const char* in = src + s * static_cast<int64_t>(Bytes);
    char* out = dst + d * static_cast<int64_t>(Bytes);
    for (int64_t i = 0; i < last.size; ++i) std::memcpy(out + i * dst_step, in + i * src_step, Bytes);
  }
}

// dst[i] = src[i] for every multi-index of `shape`; strides in elements of `element_bytes` each.
void strided_copy(const void* src, const int64_t* src_strides, void* dst, const int64_t* dst_strides,
                  const int64_t* shape, int ndim, size_t element_bytes) {
  for (int i = 0; i < ndim; ++i)
    if (shape[i] == 0) return;
  const std::vector<Dim> dims = coalesce(shape, src_strides, dst_strides, ndim);
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  if (dims.empty()) {  // a single element
    std::memcpy(out, in, element_bytes);
    return;
  }
  const Dim last = dims.back();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < dims.size(); ++i) rows *= dims[i].size;

  if (last.src_stride == 1 && last.dst_stride == 1) {
    // Contiguous runs on both sides: one memcpy for a contiguous tensor, else one per row.
    const size_t run = static_cast<size_t>(last.size) * element_bytes;
    if (rows == 1) {
      std::memcpy(out, in, run);
      return;
    }
#pragma omp parallel for if (parallel : rows * last.size > kParallelElements)
    for (int64_t r = 0; r < rows; ++r) {
      int64_t s, d;
      row_offsets(dims, r, s, d);
      std::memcpy(out + d * static_cast<int64_t>(element_bytes), in + s * static_cast<int64_t>(element_bytes), run);
    }
    return;
  }
  switch (element_bytes) {
    case 2: copy_rows<2>(in, out, dims, rows); break;
    case 4: copy_rows<4>(in, out, dims, rows); break;
    case 8: copy_rows<8>(in, out, dims, rows); break;
  }
}

// buffer[b, slots[b], :] = values[b, :] for buffer [B, M, n]
template <class T>
void scatter_rows(const T* values, const int32_t* slots, T* buffer, int64_t rows, int64_t capacity, int64_t n) {
  for (int64_t b = 0; b < rows; ++b)
    std::memcpy(buffer + (b * capacity + slots[b]) * n, values + b * n, static_cast<size_t>(n) * sizeof(T));
}

}  // namespace

void CpuBackend::fill(Tensor& out, double value) {
  const auto timing = timer_.time("fill");
  expect("fill", {{"out", out}}, out.dtype());
  dispatch_any(out.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::fill(ptr<T>(out), out.numel(), value);
  });
}

void CpuBackend::strided_copy(const Tensor& src, Tensor& dst) {
  const auto timing = timer_.time("strided_copy");
  T6_CHECK(src.shape() == dst.shape() && src.dtype() == dst.dtype(), "cpu strided_copy: source ",
           shape_str(src.shape()), " ", dtype_name(src.dtype()), " and destination ", shape_str(dst.shape()), " ",
           dtype_name(dst.dtype()), " differ");
  T6_CHECK(src.device() == Device::CPU && dst.device() == Device::CPU,
           "cpu strided_copy: both tensors must be on the CPU");
  cpu::strided_copy(src.raw_data(), src.strides().data(), dst.raw_data(), dst.strides().data(), src.shape().data(),
                    src.ndim(), dtype_size(src.dtype()));
}

void CpuBackend::cast(const Tensor& src, Tensor& dst) {
  const auto timing = timer_.time("cast");
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

void CpuBackend::scatter_rows(const Tensor& values, const Tensor& slots, Tensor& buffer) {
  const auto timing = timer_.time("scatter_rows");
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

}  // namespace t6::cpu
