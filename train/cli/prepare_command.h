// `t6 prepare`: text files -> token shards (DIR/train_000000.bin, ..., DIR/val_000000.bin, ...) and a
// summary, DIR/prepare.json.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace t6 {

// args: the arguments after the word "prepare". Prints a summary (or, with --json, one JSON object) on
// `out`, progress and problems on `err`. Returns 0 on success, 2 for a usage error, 1 for any other
// failure; never throws.
int run_prepare_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The text printed by `t6 prepare --help`.
const char* prepare_command_help();

}  // namespace t6
