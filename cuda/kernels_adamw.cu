// AdamW over every parameter in one kernel launch (a "multi-tensor apply"): the slots' pointers and
// sizes go to the GPU as one table, and the concatenation of all parameters is cut into fixed chunks,
// one block per chunk, so a model's hundreds of tensors cost one launch instead of hundreds. The table
// stays on the GPU between steps and is uploaded again only when the tensors change; the step's
// hyperparameters travel as a kernel argument.
#include <cmath>
#include <cstring>

#include "core/adamw_constants.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

constexpr int64_t kChunk = 4096;  // elements per block and chunk

struct AdamWTensor {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t numel;
  int64_t start;  // offset of this tensor in the concatenation of all of them
};
// Tables are compared byte for byte with the one uploaded last, which needs a layout without padding.
static_assert(sizeof(AdamWTensor) == 4 * sizeof(void*) + 2 * sizeof(int64_t), "AdamWTensor has padding");

}  // namespace

namespace kernels {

// adamw_step, per element: the float32 arithmetic of core/adamw_constants.h, as on the CPU.
__global__ void adamw_step(const AdamWTensor* tensors, int count, int64_t total, AdamWConstants k) {
  for (int64_t chunk_start = blockIdx.x * kChunk; chunk_start < total; chunk_start += int64_t{gridDim.x} * kChunk) {
    // The tensor holding the chunk's first element: the last one starting at or before it.
    int lo = 0, hi = count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (tensors[mid].start <= chunk_start)
        lo = mid;
      else
        hi = mid - 1;
    }
    int t = lo;
    const int64_t chunk_end = min(total, chunk_start + kChunk);
    for (int64_t g = chunk_start + threadIdx.x; g < chunk_end; g += blockDim.x) {
      while (g >= tensors[t].start + tensors[t].numel) ++t;  // the chunk may span several small tensors
      const AdamWTensor& slot = tensors[t];
      const int64_t i = g - slot.start;
      const float grad = slot.grad[i] * k.grad_scale;
      const float m = k.beta1 * slot.exp_avg[i] + k.one_minus_beta1 * grad;
      const float v = k.beta2 * slot.exp_avg_sq[i] + k.one_minus_beta2 * grad * grad;
      slot.exp_avg[i] = m;
      slot.exp_avg_sq[i] = v;
      slot.param[i] = slot.param[i] * k.decay - k.step_size * m / (sqrtf(v) * k.inv_sqrt_bias2 + k.eps);
    }
  }
}

}  // namespace kernels

void CudaBackend::adamw_step(std::vector<AdamWSlot>& slots, const AdamWHyper& h) {
  const auto timing = timer_.time("adamw_step");
  std::vector<AdamWTensor> table;
  int64_t total = 0;
  for (const AdamWSlot& s : slots) {
    for (const Tensor* t : {&s.param, &s.grad, &s.exp_avg, &s.exp_avg_sq}) {
      require_dtype("adamw_step", *t, DType::F32);
      T6_CHECK(t->numel() == s.param.numel(), "cuda adamw_step: a slot's tensors differ in size (param ",
               shape_str(s.param.shape()), ", got ", shape_str(t->shape()), ")");
    }
    if (s.param.numel() == 0) continue;
    table.push_back({device_ptr<float>(s.param), device_ptr<const float>(s.grad), device_ptr<float>(s.exp_avg),
                     device_ptr<float>(s.exp_avg_sq), s.param.numel(), total});
    total += s.param.numel();
  }
  if (total == 0) return;
  const AdamWConstants k = adamw_constants(h);
  const auto* bytes = reinterpret_cast<const unsigned char*>(table.data());
  const size_t table_bytes = table.size() * sizeof(AdamWTensor);
  if (!adamw_table_ || adamw_table_bytes_.size() != table_bytes ||
      std::memcmp(adamw_table_bytes_.data(), bytes, table_bytes) != 0) {
    // Replacing the block is safe while a queued step still reads the old table: like the upload, any
    // later user of that block runs after the step on the same stream.
    adamw_table_.emplace(allocator_, table_bytes);
    copy_from_host(adamw_table_->as<void>(), bytes, table_bytes);
    adamw_table_bytes_.assign(bytes, bytes + table_bytes);
  }
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  kernels::adamw_step<<<row_grid(chunks), kThreads, 0, stream_>>>(adamw_table_->as<const AdamWTensor>(),
                                                                  static_cast<int>(table.size()), total, k);
  T6_CUDA_CHECK_LAUNCH(adamw_step);
}

}  // namespace t6
