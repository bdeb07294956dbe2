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
  try {
    return t6::run_command_line(args, std::cout, std::cerr);
  } catch (const std::exception& e) {
    // One of several ranks: print, then end them all, so none waits for this one in a collective.
    if (t6::launched_by_mpirun()) t6::World::get().abort_all(e.what());
    std::cerr << "t6: error: " << e.what() << "\n";
    return 1;
  }
}
