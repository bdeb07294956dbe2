// `t6 COMMAND ...`: dispatch to the subcommands and the top-level help.
#include <map>
#include <new>

#include "core/did_you_mean.h"
#include "core/error.h"
#include "train/cli/commands.h"
#include "train/cli/prepare_command.h"
#include "train/parallel/world.h"

namespace t6 {

namespace {

const char* const kUsage = R"(t6: train and run T6 (Tensor Product Attention) models.

usage: t6 COMMAND [options]      (t6 COMMAND --help for each command's options)

commands:
  prepare    text files -> token shards (byte or GPT-2 BPE tokenizer)
  train      train a model from a JSON config
  experiment train runs that differ only in their attention (or other settings); curves and a table
  eval       loss, perplexity and bits per token of a checkpoint on token shards
  generate   sample text from a checkpoint with the factorized KV cache
  info       parameter counts and KV-cache sizes of a config or checkpoint; build details
  gradcheck  float64 gradient check of every op and of a tiny model
  bench      time training steps of a config on random tokens
)";

}  // namespace

int run_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  using Command = int (*)(const std::vector<std::string>&, std::ostream&, std::ostream&);
  const std::map<std::string, Command> commands = {
      {"prepare", run_prepare_command}, {"train", run_train_command}, {"eval", run_eval_command},
      {"info", run_info_command},       {"gradcheck", run_gradcheck_command}, {"bench", run_bench_command},
      {"generate", run_generate_command},     {"experiment", run_experiment_command},
  };
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    out << kUsage;
    return args.empty() ? 2 : 0;
  }
  auto it = commands.find(args[0]);
  if (it == commands.end()) {
    std::vector<std::string> names;
    for (const auto& [name, fn] : commands) names.push_back(name);
    err << "t6: unknown command \"" << args[0] << "\"" << did_you_mean(args[0], names) << "; run t6 --help\n";
    return 2;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    return it->second(rest, out, err);
  } catch (const Error& e) {
    err << "t6 " << args[0] << rank_label() << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {  // past the estimate every command checks before it allocates
    err << "t6 " << args[0] << rank_label() << ": error: out of memory; lower the batch size, the sequence length or the model's "
        << "size, or free memory for this process\n";
    return 1;
  } catch (const std::exception& e) {  // a failure outside t6's own checks: a bug to report
    err << "t6 " << args[0] << rank_label() << ": error: unexpected failure (" << e.what()
        << "); this is a bug in t6: please report it with the command that caused it\n";
    return 1;
  }
}

}  // namespace t6
