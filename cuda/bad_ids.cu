// Reporting ids out of range found by CUDA kernels (see bad_ids.h).
#include "cuda/bad_ids.h"

#include "cuda/cuda_check.h"

namespace t6 {

BadIdReporter::BadIdReporter(cudaStream_t stream) {
  T6_CUDA_CHECK(cudaMalloc(&claimed_, sizeof(int32_t)));
  T6_CUDA_CHECK(cudaMemsetAsync(claimed_, 0, sizeof(int32_t), stream));  // ahead of every kernel on the stream
  T6_CUDA_CHECK(cudaHostAlloc(&host_record_, sizeof(BadIdRecord), cudaHostAllocMapped));
  *host_record_ = BadIdRecord{};
  T6_CUDA_CHECK(cudaHostGetDevicePointer(&device_record_, host_record_, 0));
}

BadIdReporter::~BadIdReporter() {
  // Errors cannot be reported from a destructor; the backend has waited for its stream already.
  cudaFree(claimed_);
  cudaFreeHost(host_record_);
}

void BadIdReporter::throw_if_reported(cudaStream_t stream) {
  const BadIdRecord found = *host_record_;
  if (found.kind == BadIdKind::None) return;
  *host_record_ = BadIdRecord{};
  T6_CUDA_CHECK(cudaMemsetAsync(claimed_, 0, sizeof(int32_t), stream));
  // The first words repeat the CPU backend's message for the same mistake; then what only a GPU run
  // needs said: the error surfaces at the first wait for the GPU after the kernel that found it.
  const char* found_by = " (found by a CUDA kernel, and reported at the first synchronization after it)";
  if (found.kind == BadIdKind::EmbeddingId)
    throw Error(cat("embedding: token id ", found.id, " at position ", found.position, " is outside [0, ", found.limit,
                    "); ids must be below vocab_size: check that the tokenizer and the data match the model's "
                    "vocab_size", found_by));
  throw Error(cat("cross_entropy: target id ", found.id, " at position ", found.position, " lies outside [-1, ",
                  found.limit, "); every target must be a token id below vocab_size or -1 (ignored): check that the "
                  "tokenizer and the data match the model's vocab_size", found_by));
}

}  // namespace t6
