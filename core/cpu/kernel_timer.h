// Per-kernel time for `t6 bench train --profile` on the CPU, the twin of cuda/kernel_timer.h: while
// enabled, every CpuBackend method opens a Scope at its top, which reads the steady clock at both ends
// and adds the difference to its kernel's total. A CPU kernel is done when its method returns (its
// OpenMP team has joined), so the wall time of the call is the kernel's time. Disabled (the default),
// a Scope is inert and costs one branch.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"

namespace t6::cpu {

class KernelTimer {
 public:
  void set_enabled(bool enabled);  // switching on starts the totals afresh
  bool enabled() const { return enabled_; }

  class Scope {
   public:
    Scope() = default;
    Scope(KernelTimer* timer, std::string name)
        : timer_(timer), name_(std::move(name)), start_(std::chrono::steady_clock::now()) {}
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    KernelTimer* timer_ = nullptr;
    std::string name_;
    std::chrono::steady_clock::time_point start_;
  };
  // Times the work done until the returned Scope ends, under `name`.
  Scope time(const char* name) { return enabled() ? Scope(this, name) : Scope(); }
  Scope time(std::string name) { return enabled() ? Scope(this, std::move(name)) : Scope(); }

  std::vector<Backend::KernelTime> totals() const;  // per name, largest first

 private:
  void add(const std::string& name, double ms);

  std::atomic<bool> enabled_{false};
  mutable std::mutex mutex_;  // a kernel may be called from several threads (tests do)
  std::map<std::string, Backend::KernelTime> totals_;
};

}  // namespace t6::cpu
