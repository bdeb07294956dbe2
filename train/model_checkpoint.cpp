#include "train/model_checkpoint.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/node.h"

namespace t6 {

namespace {
const char* const kConfigKey = "t6_model_config";
const char* const kTokenizerKey = "t6_tokenizer";
const char* const kTiedName = "transformer.wte.weight";
const char* const kHeadName = "lm_head.weight";
}  // namespace

void save_model(const T6Model& model, const std::string& path, const std::string& tokenizer) {
  std::vector<Tensor> host;  // keeps the float32 CPU copies alive during the write
  std::vector<SafetensorsWriteEntry> entries;
  for (const auto& [name, p] : model.named_parameters()) {
    host.push_back(p.to_device(Device::CPU).to_dtype(DType::F32).contiguous_data());
    entries.push_back({name, p.shape(), host.back().data<float>()});
  }
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {kConfigKey, model.config.to_json().dump()}};
  if (!tokenizer.empty()) metadata[kTokenizerKey] = tokenizer;
  write_safetensors(path, entries, metadata);
}

ModelConfig checkpoint_config(const SafetensorsFile& file, const std::optional<ModelConfig>& supplied) {
  auto stored = file.metadata().find(kConfigKey);
  if (stored == file.metadata().end()) {
    T6_CHECK(supplied.has_value(), file.path(), ": the checkpoint has no model config in its metadata (for example it "
                                                "was exported from PyTorch); pass one with --config FILE");
    return *supplied;
  }
  nlohmann::json j = nlohmann::json::parse(stored->second, nullptr, false);
  T6_CHECK(!j.is_discarded(), file.path(), ": metadata \"", kConfigKey, "\" is not valid JSON");
  const ModelConfig config = ModelConfig::from_json(j, file.path() + " (metadata " + kConfigKey + ")");
  if (supplied) {
    nlohmann::json a = config.to_json(), b = supplied->to_json();
    for (const char* loose : {"init_seed", "block_size"}) a.erase(loose), b.erase(loose);  // shape-neutral keys
    T6_CHECK(a == b, file.path(), ": the checkpoint's model config ", a.dump(), " does not match the config given ",
             b.dump(), "; use the config the model was trained with, or leave --config out");
    ModelConfig merged = config;
    merged.block_size = supplied->block_size;
    return merged;
  }
  return config;
}

std::string checkpoint_tokenizer(const SafetensorsFile& file) {
  auto it = file.metadata().find(kTokenizerKey);
  return it == file.metadata().end() ? "" : it->second;
}

void load_model_weights(T6Model& model, const SafetensorsFile& file) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  for (const auto& [name, p] : model.named_parameters()) expected.insert(name);

  // 1. Validate everything before touching the model.
  std::map<std::string, const SafetensorsTensor*> source;  // parameter name → tensor in the file
  std::set<std::string> unreadable;                        // parameters present with an unsupported dtype
  for (const SafetensorsTensor& t : file.tensors()) {
    const std::string name = t.name == kHeadName ? kTiedName : t.name;
    if (!expected.count(name)) {
      problems.push_back(cat("unexpected tensor \"", t.name, "\" (not a parameter of this ", model.config.attention_name(),
                             " model)"));
    } else if (t.dtype != "F32" && t.dtype != "F64" && t.dtype != "BF16") {
      problems.push_back(cat("tensor \"", t.name, "\" has dtype ", t.dtype, "; supported: F32, F64, BF16"));
      unreadable.insert(name);
    } else if (!source.count(name) || source[name]->name == kHeadName) {
      source[name] = &t;  // the tied matrix under both names: the wte one is loaded, the other compared below
    }
  }
  for (const auto& [name, p] : model.named_parameters()) {
    auto it = source.find(name);
    if (it == source.end()) {
      const char* alias = name == kTiedName ? " (also accepted as \"lm_head.weight\")" : "";
      if (!unreadable.count(name))
        problems.push_back(cat("missing tensor \"", name, "\"", alias, " of shape ", shape_str(p.shape())));
    } else if (it->second->shape != p.shape()) {
      problems.push_back(cat("tensor \"", it->second->name, "\" has shape ", shape_str(it->second->shape),
                             " but the model config needs ", shape_str(p.shape())));
    }
  }
  const SafetensorsTensor *tied = file.find(kTiedName), *head = file.find(kHeadName);
  if (tied && head && !unreadable.count(kTiedName)) {
    if (head->shape != tied->shape) {
      problems.push_back(cat("\"lm_head.weight\" has shape ", shape_str(head->shape),
                             " but \"transformer.wte.weight\" ", shape_str(tied->shape),
                             "; T6 ties them, so they must be equal"));
    } else if (file.read_float32(kHeadName) != file.read_float32(kTiedName)) {
      problems.push_back("both \"transformer.wte.weight\" and \"lm_head.weight\" are present but differ; T6 ties them");
    }
  }
  if (!problems.empty()) {
    std::string message = cat(file.path(), ": cannot load this checkpoint into the model (", problems.size(),
                              " problem", problems.size() > 1 ? "s" : "", "):");
    for (const std::string& p : problems) message += "\n  - " + p;
    throw Error(message);
  }

  // 2. Read every tensor into host memory; only when all reads succeeded, copy into the parameters.
  std::vector<std::pair<Tensor, std::vector<float>>> staged;
  for (const auto& [name, p] : model.named_parameters()) {
    std::vector<float> values = file.read_float32(source[name]->name);
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    T6_CHECK(bad == values.end(), file.path(), ": tensor \"", source[name]->name, "\" holds a non-finite value (",
             *bad, " at element ", bad - values.begin(), "); the checkpoint is corrupt or comes from a diverged run: "
             "use an earlier checkpoint");
    staged.emplace_back(p, std::move(values));
  }
  NoGradGuard no_grad;
  for (auto& [param, values] : staged) {
    Tensor host = empty(param.shape(), DType::F32);
    std::copy(values.begin(), values.end(), host.data<float>());
    param.copy_(host);
  }
}

std::unique_ptr<T6Model> load_model(const std::string& path, const std::optional<ModelConfig>& supplied) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  auto model = std::make_unique<T6Model>(checkpoint_config(file, supplied));
  load_model_weights(*model, file);
  return model;
}

}  // namespace t6
