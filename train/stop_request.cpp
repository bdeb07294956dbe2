#include "train/stop_request.h"

#include <atomic>

namespace t6 {

namespace {
std::atomic<int> stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");
extern "C" void request_stop(int signal) { stop_signal = signal; }
}  // namespace

StopOnSignal::StopOnSignal() {
  stop_signal = 0;
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;  // SA_RESETHAND: a second signal kills
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

StopOnSignal::~StopOnSignal() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

int StopOnSignal::requested() const { return stop_signal; }

}  // namespace t6
