// The device side of bad_ids.h: how a kernel reports an id outside its range.
#pragma once
#include "cuda/bad_ids.h"

namespace t6::kernels {

// Records ids[position] = id, outside its range, unless an earlier bad id holds the record already.
// The record's kind is written last, behind a system-wide fence, so the host never sees half a record.
__device__ inline void report_bad_id(BadIdSink sink, BadIdKind kind, int32_t id, int64_t position, int64_t limit) {
  if (atomicCAS(sink.claimed, 0, 1) != 0) return;
  sink.record->id = id;
  sink.record->position = position;
  sink.record->limit = limit;
  __threadfence_system();
  sink.record->kind = kind;
}

}  // namespace t6::kernels
