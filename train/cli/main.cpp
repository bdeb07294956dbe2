// The `t6` command line: one subcommand per job, each implemented in its own train/*_command.cpp.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/cli/commands.h"
#include "train/parallel/world.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  int status = 1;
  try {
    status = t6::run_command_line(args, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "t6" << t6::rank_label() << ": error: " << e.what() << "\n";
  }
  // A failed rank of several ends them all, so that none waits for it in a collective forever. (A
  // stop by a signal is agreed by every rank, which then exit normally with 130 or 143.)
  if (status == 1 && t6::launched_by_mpirun()) t6::end_all_ranks(status);
  return status;
}
