// Per-kernel GPU time for `t6 bench train --profile`: while enabled, every backend method wraps its
// launches in a Scope that records a CUDA event before and after on the backend's stream, so the
// totals are time on the GPU, not the host's launch time. Disabled (the default), a Scope is inert
// and costs one branch.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <string>
#include <vector>

#include "core/backend.h"

namespace t6 {

class KernelTimer {
 public:
  explicit KernelTimer(cudaStream_t stream) : stream_(stream) {}
  ~KernelTimer();
  KernelTimer(const KernelTimer&) = delete;
  KernelTimer& operator=(const KernelTimer&) = delete;

  void set_enabled(bool enabled);
  bool enabled() const { return enabled_ && !paused_; }
  // While paused (a graph capture, whose events could not be waited for) nothing is timed, and the
  // totals so far are kept.
  void set_paused(bool paused) { paused_ = paused; }

  class Scope {
   public:
    Scope() = default;
    Scope(KernelTimer* timer, std::string name);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    KernelTimer* timer_ = nullptr;
    std::string name_;
    cudaEvent_t start_ = nullptr, stop_ = nullptr;
  };
  // Times the launches made until the returned Scope ends, under `name`.
  Scope time(const char* name) { return enabled() ? Scope(this, name) : Scope(); }
  Scope time(std::string name) { return enabled() ? Scope(this, std::move(name)) : Scope(); }

  // Waits for the stream, then returns the totals per name, largest first.
  std::vector<Backend::KernelTime> totals();

 private:
  struct Pending {
    std::string name;
    cudaEvent_t start, stop;
  };
  cudaEvent_t take_event();
  void fold_pending();  // waits for every pending pair and adds it to the totals

  cudaStream_t stream_;
  bool enabled_ = false, paused_ = false;
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  std::map<std::string, Backend::KernelTime> totals_;
};

}  // namespace t6
