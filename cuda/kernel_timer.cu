#include "cuda/kernel_timer.h"

#include <algorithm>

#include "cuda/cuda_check.h"

namespace t6 {

namespace {
// Pending event pairs are folded into the totals in batches, so a long profile holds few events.
constexpr size_t kMaxPending = 4096;
}  // namespace

KernelTimer::~KernelTimer() {
  // Errors cannot be reported from a destructor; at program exit the runtime may be gone already.
  for (const Pending& p : pending_) {
    cudaEventDestroy(p.start);
    cudaEventDestroy(p.stop);
  }
  for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
}

void KernelTimer::set_enabled(bool enabled) {
  if (enabled && !enabled_) {
    fold_pending();
    totals_.clear();
  }
  enabled_ = enabled;
}

cudaEvent_t KernelTimer::take_event() {
  if (pending_.size() >= kMaxPending) fold_pending();
  if (free_events_.empty()) {
    cudaEvent_t event = nullptr;
    T6_CUDA_CHECK(cudaEventCreate(&event));
    return event;
  }
  cudaEvent_t event = free_events_.back();
  free_events_.pop_back();
  return event;
}

KernelTimer::Scope::Scope(KernelTimer* timer, std::string name)
    : timer_(timer), name_(std::move(name)), start_(timer->take_event()), stop_(timer->take_event()) {
  T6_CUDA_CHECK(cudaEventRecord(start_, timer_->stream_));
}

KernelTimer::Scope::~Scope() {
  if (!timer_) return;
  // A failure cannot be thrown from a destructor; the pair is then not counted (and not reused).
  if (cudaEventRecord(stop_, timer_->stream_) != cudaSuccess) return;
  timer_->pending_.push_back({std::move(name_), start_, stop_});
}

void KernelTimer::fold_pending() {
  for (const Pending& p : pending_) {
    T6_CUDA_CHECK(cudaEventSynchronize(p.stop));
    float ms = 0;
    T6_CUDA_CHECK(cudaEventElapsedTime(&ms, p.start, p.stop));
    Backend::KernelTime& total = totals_[p.name];
    total.kernel = p.name;
    total.calls += 1;
    total.ms += ms;
    free_events_.push_back(p.start);
    free_events_.push_back(p.stop);
  }
  pending_.clear();
}

std::vector<Backend::KernelTime> KernelTimer::totals() {
  fold_pending();
  std::vector<Backend::KernelTime> out;
  for (const auto& [name, total] : totals_) out.push_back(total);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  return out;
}

}  // namespace t6
