#include "core/cpu/kernel_timer.h"

#include <algorithm>

namespace t6::cpu {

void KernelTimer::set_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (enabled && !enabled_) totals_.clear();
  enabled_ = enabled;
}

KernelTimer::Scope::~Scope() {
  if (timer_ == nullptr) return;
  timer_->add(name_, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count());
}

void KernelTimer::add(const std::string& name, double ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  Backend::KernelTime& total = totals_[name];
  total.kernel = name;
  total.calls += 1;
  total.ms += ms;
}

std::vector<Backend::KernelTime> KernelTimer::totals() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Backend::KernelTime> out;
  for (const auto& [name, total] : totals_) out.push_back(total);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  return out;
}

}  // namespace t6::cpu
