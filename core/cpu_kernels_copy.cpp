// CPU data movement: fill, dtype casts, and the strided copy that materialises any view.
#include <cstring>
#include <vector>

#include "core/cpu_kernels.h"

namespace t6::cpu {

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

namespace {

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

}  // namespace

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

#define T6_CPU_CAST_FROM(From)                                \
  template void cast<From, float>(const From*, float*, int64_t);   \
  template void cast<From, double>(const From*, double*, int64_t); \
  template void cast<From, int32_t>(const From*, int32_t*, int64_t); \
  template void cast<From, BF16>(const From*, BF16*, int64_t);
T6_CPU_CAST_FROM(float)
T6_CPU_CAST_FROM(double)
T6_CPU_CAST_FROM(int32_t)
T6_CPU_CAST_FROM(BF16)
#undef T6_CPU_CAST_FROM

template void fill<float>(float*, int64_t, double);
template void fill<double>(double*, int64_t, double);
template void fill<int32_t>(int32_t*, int64_t, double);
template void fill<BF16>(BF16*, int64_t, double);

}  // namespace t6::cpu
