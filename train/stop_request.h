// Ctrl-C (SIGINT) or SIGTERM (what `kill` and job schedulers send) during training: the first one only
// asks the loop to stop after the current step, which then saves; a second one kills the process as
// usual. The previous handlers come back when the guard goes, however training ends, an exception
// included.
#pragma once
#include <signal.h>

namespace t6 {

class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
  // The signal that asked to stop (SIGINT or SIGTERM), or 0.
  int requested() const;

 private:
  struct sigaction previous_int_ {}, previous_term_ {};
};

}  // namespace t6
