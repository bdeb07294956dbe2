// Ids out of range, found by CUDA kernels and reported without making every step wait for the GPU.
//
// Checking token ids or targets on the host would mean copying them back from the GPU, a
// synchronization per step. Instead the kernels that index with ids (embedding, cross-entropy) check
// each id as they read it: a bad one's row is treated safely (zero output, zero loss, never an
// out-of-bounds read), and the first bad id is written to a small record in mapped pinned host memory.
// The backend looks at the record whenever it waits for the GPU anyway (synchronize, copy_to_host and
// so every read of a value, sum_of_squares) and throws it as a t6::Error naming the id, its position,
// the valid range and the fix, after clearing it, so the backend stays usable.
//
// The first bad id claims the record with an atomic on a word in device memory (atomics on mapped host
// memory are not guaranteed over PCIe), then writes the record with plain stores.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace t6 {

enum class BadIdKind : int32_t { None = 0, EmbeddingId = 1, CrossEntropyTarget = 2 };

// What the kernel that claimed the record wrote: ids[position] = id lies outside the range of `kind`,
// [0, limit) for an embedding id, [−1, limit) for a target.
struct BadIdRecord {
  BadIdKind kind;  // written last: a kind other than None means the rest is complete
  int32_t id;
  int64_t position;  // in the flattened ids or targets
  int64_t limit;     // vocab_size
};

// What a kernel gets (by value) to report a bad id: see report_bad_id in bad_ids.cuh.
struct BadIdSink {
  int32_t* claimed;     // device memory: 0 until a bad id claims the record
  BadIdRecord* record;  // the mapped host record, as the GPU addresses it
};

class BadIdReporter {
 public:
  explicit BadIdReporter(cudaStream_t stream);  // the backend's stream, where every kernel runs
  ~BadIdReporter();
  BadIdReporter(const BadIdReporter&) = delete;
  BadIdReporter& operator=(const BadIdReporter&) = delete;

  BadIdSink sink() const { return {claimed_, device_record_}; }

  // To be called right after waiting for `stream`, so no kernel is writing the record: throws the
  // recorded bad id, if any, as a t6::Error, after clearing the record and queueing the release of the
  // claim on `stream` (ahead of any later kernel).
  void throw_if_reported(cudaStream_t stream);

 private:
  int32_t* claimed_ = nullptr;
  BadIdRecord* host_record_ = nullptr;    // pinned and mapped
  BadIdRecord* device_record_ = nullptr;  // the same memory, as the GPU addresses it
};

}  // namespace t6
