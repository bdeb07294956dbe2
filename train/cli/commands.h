// The `t6` subcommands. Each takes its arguments (without the subcommand name), writes results to
// `out` and diagnostics to `err`, and returns the process exit status; none lets an exception escape
// for bad input (a clear one-line message and a non-zero status instead).
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace t6 {

int run_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

int run_train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_eval_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_generate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_bench_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_info_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_experiment_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run_gradcheck_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace t6
