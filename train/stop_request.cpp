#include "train/stop_request.h"

#include <atomic>

namespace t6 {

namespace {
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");
extern "C" void request_stop(int) { stop_requested = true; }
}  // namespace

StopOnCtrlC::StopOnCtrlC() {
  stop_requested = false;
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;  // SA_RESETHAND: a second Ctrl-C kills
  sigaction(SIGINT, &action, &previous_);
}

StopOnCtrlC::~StopOnCtrlC() { sigaction(SIGINT, &previous_, nullptr); }

bool StopOnCtrlC::requested() const { return stop_requested; }

}  // namespace t6
