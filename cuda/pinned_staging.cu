// The pinned staging ring of host → device copies (see pinned_staging.h).
#include "cuda/pinned_staging.h"

#include <algorithm>
#include <cstring>

#include "cuda/cuda_check.h"

namespace t6 {

PinnedStaging::PinnedStaging(cudaStream_t stream) : stream_(stream) {
  try {
    for (Chunk& chunk : chunks_) {
      T6_CUDA_CHECK(cudaHostAlloc(&chunk.memory, kChunkBytes, cudaHostAllocDefault));
      T6_CUDA_CHECK(cudaEventCreateWithFlags(&chunk.last_use, cudaEventDisableTiming));
    }
  } catch (...) {
    release();
    throw;
  }
}

PinnedStaging::~PinnedStaging() { release(); }

void PinnedStaging::release() {
  // Errors cannot be reported from here (a destructor, or a constructor already throwing). No copy still
  // reads the memory: the backend waits for its stream before its members go.
  for (Chunk& chunk : chunks_) {
    if (chunk.last_use != nullptr) cudaEventDestroy(chunk.last_use);
    if (chunk.memory != nullptr) cudaFreeHost(chunk.memory);
    chunk = Chunk{};
  }
}

void PinnedStaging::copy(void* device_dst, const void* host_src, size_t bytes) {
  char* dst = static_cast<char*>(device_dst);
  const char* src = static_cast<const char*>(host_src);
  while (bytes > 0) {
    // A copy that does not fit in what is left of the current chunk starts the next one, so only a copy
    // larger than a whole chunk is split.
    if (used_ + std::min(bytes, kChunkBytes) > kChunkBytes) next_chunk();
    const size_t piece = std::min(bytes, kChunkBytes - used_);
    Chunk& chunk = chunks_[current_];
    char* staged = static_cast<char*>(chunk.memory) + used_;
    std::memcpy(staged, src, piece);
    T6_CUDA_CHECK(cudaMemcpyAsync(dst, staged, piece, cudaMemcpyHostToDevice, stream_));
    T6_CUDA_CHECK(cudaEventRecord(chunk.last_use, stream_));
    used_ += piece, dst += piece, src += piece, bytes -= piece;
  }
}

void PinnedStaging::next_chunk() {
  current_ = (current_ + 1) % kChunks;
  used_ = 0;
  // The chunk's earlier copies were queued a whole ring ago; usually they are long done and this
  // returns at once.
  T6_CUDA_CHECK(cudaEventSynchronize(chunks_[current_].last_use));
}

}  // namespace t6
