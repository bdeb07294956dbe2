// `t6 info`: what a model costs. Parameter counts by group, and the KV cache per token next to the
// MHA, GQA and MQA baselines of the same width (the reason TPA exists), plus build details.
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "core/backend.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/threads.h"
#include "core/memory_summary.h"
#include "nn/kv_cache.h"
#include "nn/parameter_matching.h"
#include "nn/parameter_layout.h"
#include "train/cli/cli_args.h"
#include "train/cli/commands.h"
#include "train/model_checkpoint.h"
#include "train/train_config.h"

namespace t6 {

namespace {

const char* const kHelp = R"(usage: t6 info [--config FILE | --checkpoint FILE [--config FILE]] [--match] [--json]
       t6 info --keys

Prints the parameter count by group and the KV-cache size per token (numbers and float32 bytes, per
layer and for all layers) of the model, next to what multi-head (MHA), grouped-query (GQA) and
multi-query (MQA) attention of the same width would cache. Without a model, prints build details
(BLAS library, threads, CUDA). FILE may be a training config (with a "model" section) or a bare
model config. --match also sizes MHA, GQA and MQA to the model's parameter count (within 1%, by their
head counts, the paper's rule: nn/parameter_matching.h) and prints their heads, parameters and KV cache.
--keys prints every config key (allowed values, default, whether --resume may change it,
meaning) as the Markdown table of README.md.
)";


std::string millions(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  return buf;
}

// Whether the CPU backend caches its memory, and its statistics (small here: t6 info allocates little).
std::string cpu_memory_line() {
  const auto& cpu = static_cast<const cpu::CpuBackend&>(cpu_backend());
  return cat(cpu.caches_memory() ? "caching allocator (T6_CPU_CACHE=0 turns it off)"
                                 : "uncached (T6_CPU_CACHE=0, or a sanitizer build)",
             "; ", memory_summary(cpu.memory_stats()));
}

// The model itself, then MHA, GQA and MQA at its parameter count.
std::vector<MatchedAttention> matched_variants(const ModelConfig& c) {
  std::vector<MatchedAttention> rows = {{c, parameter_total(c), parameter_total(c)}};
  for (const AttentionKind kind : {AttentionKind::MHA, AttentionKind::GQA, AttentionKind::MQA})
    if (kind != c.attention) rows.push_back(match_parameters(c, kind));
  return rows;
}

void print_matched(std::ostream& out, const std::vector<MatchedAttention>& rows) {
  out << "\nat equal parameters (within 1%, by head counts; nn/parameter_matching.h):\n";
  out << std::left << std::setw(12) << "  variant" << std::right << std::setw(8) << "n_head" << std::setw(11)
      << "kv heads" << std::setw(10) << "head_dim" << std::setw(13) << "parameters" << std::setw(10) << "vs model"
      << std::setw(24) << "KV numbers/token/layer" << "\n";
  for (const MatchedAttention& m : rows) {
    char difference[32];
    std::snprintf(difference, sizeof difference, "%+.2f%%", 100.0 * m.relative_difference());
    out << std::left << std::setw(12) << cat("  ", m.config.attention_name()) << std::right << std::setw(8)
        << m.config.n_head << std::setw(11) << m.config.kv_heads() << std::setw(10) << m.config.head_dim << std::setw(13)
        << m.parameters << std::setw(10) << difference << std::setw(24)
        << m.config.kv_cache_numbers_per_token_per_layer() << "\n";
  }
}

}  // namespace

int run_info_command(const std::vector<std::string>& args, std::ostream& out, std::ostream&) {
  const ParsedArgs a("info", args, {{"--config"}, {"--checkpoint"}, {"--json", false}, {"--keys", false}, {"--match", false}, {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  if (a.has("--keys")) {
    out << TrainConfig::key_reference();
    return 0;
  }
  const bool json = a.has("--json");
  if (!a.has("--config") && !a.has("--checkpoint")) {
    const nlohmann::json build = {{"blas", blas_description()},
                                  {"cpu_threads", cpu_threads()},
                                  {"cpu", backend(Device::CPU).describe()},
                                  {"cpu_memory", cpu_memory_line()},
                                  {"cuda", device_available(Device::CUDA) ? backend(Device::CUDA).describe() : "not available"}};
    if (json) {
      out << build.dump(2) << "\n";
    } else {
      for (const auto& [key, value] : build.items())
        out << std::left << std::setw(12) << key << (value.is_string() ? value.get<std::string>() : value.dump()) << "\n";
    }
    return 0;
  }
  std::optional<ModelConfig> supplied;
  if (a.has("--config")) supplied = read_model_config(a.get("--config"));
  const ModelConfig c =
      a.has("--checkpoint") ? checkpoint_config(SafetensorsFile::open(a.get("--checkpoint")), supplied) : *supplied;

  // parameter groups: the tied embedding, then attention and MLP summed over layers
  int64_t embedding = 0, attention = 0, mlp = 0;
  for (const ParameterSpec& p : parameter_layout(c)) {
    const int64_t n = numel_of(p.shape);
    if (p.name.find(".attn.") != std::string::npos) {
      attention += n;
    } else if (p.name.find(".mlp.") != std::string::npos) {
      mlp += n;
    } else {
      embedding += n;
    }
  }
  const int64_t total = embedding + attention + mlp;
  const std::vector<KVCacheSize> rows = kv_cache_comparison(c);
  const std::vector<MatchedAttention> matched = a.has("--match") ? matched_variants(c) : std::vector<MatchedAttention>{};

  if (json) {
    nlohmann::json cache = nlohmann::json::array();
    for (const KVCacheSize& r : rows)
      cache.push_back({{"variant", r.variant},
                       {"numbers_per_token_per_layer", r.numbers_per_layer},
                       {"bytes_per_token_per_layer", 4 * r.numbers_per_layer},
                       {"numbers_per_token", r.numbers_per_layer * c.n_layer},
                       {"bytes_per_token", 4 * r.numbers_per_layer * c.n_layer},
                       {"bytes_at_block_size", 4 * r.numbers_per_layer * c.n_layer * c.block_size}});
    nlohmann::json result = {{"model", c.to_json()},
                              {"parameters", {{"total", total}, {"embedding", embedding}, {"attention", attention}, {"mlp", mlp}}},
                              {"kv_cache", cache}};
    if (!matched.empty()) {
      result["matched"] = nlohmann::json::array();
      for (const MatchedAttention& m : matched)
        result["matched"].push_back({{"attention", m.config.attention_name()},
                                     {"n_head", m.config.n_head},
                                     {"n_kv_head", m.config.kv_heads()},
                                     {"head_dim", m.config.head_dim},
                                     {"parameters", m.parameters},
                                     {"relative_difference", m.relative_difference()},
                                     {"kv_cache_numbers_per_token_per_layer", m.config.kv_cache_numbers_per_token_per_layer()}});
    }
    out << result.dump(2) << "\n";
    return 0;
  }
  out << "model: T6, attention \"" << c.attention_name() << "\", L=" << c.n_layer << " d=" << c.n_embd << " H=" << c.n_head
      << " dh=" << c.head_dim << " RQ=" << c.q_rank << " R=" << c.rank << " V=" << c.vocab_size
      << " block_size=" << c.block_size << "\n\n";
  out << "parameters: " << millions(total) << " (" << total << ")\n";
  out << "  embedding (tied with the output head)  " << std::setw(10) << millions(embedding) << "\n";
  out << "  attention, all layers                  " << std::setw(10) << millions(attention) << "\n";
  out << "  MLP, all layers                        " << std::setw(10) << millions(mlp) << "\n\n";
  out << "KV cache per token (float32):\n";
  out << std::left << std::setw(26) << "  variant" << std::right << std::setw(14) << "numbers/layer" << std::setw(13)
      << "bytes/layer" << std::setw(15) << "numbers total" << std::setw(13) << "bytes total" << std::setw(18)
      << "at block_size" << "\n";
  for (const KVCacheSize& r : rows) {
    char at_block[32];
    std::snprintf(at_block, sizeof at_block, "%.2f MiB",
                  4.0 * static_cast<double>(r.numbers_per_layer * c.n_layer * c.block_size) / (1 << 20));
    out << std::left << std::setw(26) << ("  " + r.variant) << std::right << std::setw(14) << r.numbers_per_layer
        << std::setw(13) << 4 * r.numbers_per_layer << std::setw(15) << r.numbers_per_layer * c.n_layer << std::setw(13)
        << 4 * r.numbers_per_layer * c.n_layer << std::setw(18) << at_block << "\n";
  }
  if (!matched.empty()) print_matched(out, matched);
  return 0;
}

}  // namespace t6
