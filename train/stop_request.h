// Ctrl-C during training: the first SIGINT only asks the loop to stop after the current step (which
// then saves); a second one kills the process as usual. The previous handler comes back when the
// guard goes, however training ends, an exception included.
#pragma once
#include <signal.h>

namespace t6 {

class StopOnCtrlC {
 public:
  StopOnCtrlC();
  ~StopOnCtrlC();
  StopOnCtrlC(const StopOnCtrlC&) = delete;
  StopOnCtrlC& operator=(const StopOnCtrlC&) = delete;
  bool requested() const;

 private:
  struct sigaction previous_ {};
};

}  // namespace t6
