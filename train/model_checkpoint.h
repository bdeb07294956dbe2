// Models as safetensors files, interchangeable with the authors' PyTorch code: one F32 tensor per spec
// parameter name (the tied matrix once, as transformer.wte.weight), and the model config (plus the
// tokenizer name) in the file's __metadata__ so a checkpoint describes itself.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "nn/t6_model.h"
#include "train/io/safetensors.h"

namespace t6 {

// Atomic write (temporary file, fsync, rename); parameters may live on any device.
void save_model(const T6Model& model, const std::string& path, const std::string& tokenizer = "");

// The config a checkpoint was saved with (metadata "t6_model_config"), or `supplied` for files without
// one (e.g. exported from PyTorch). When both exist they must agree on every shape-defining key.
ModelConfig checkpoint_config(const SafetensorsFile& file, const std::optional<ModelConfig>& supplied);
std::string checkpoint_tokenizer(const SafetensorsFile& file);  // "" when not recorded

// Checks every tensor of `file` against the model (names, dtypes F32/F64/BF16, shapes; the tied matrix
// under transformer.wte.weight or lm_head.weight, or both if equal), reporting all problems in one
// error, and only then copies the weights in. A failure leaves the model untouched.
void load_model_weights(T6Model& model, const SafetensorsFile& file);

// checkpoint_config + construct + load_model_weights.
std::unique_ptr<T6Model> load_model(const std::string& path, const std::optional<ModelConfig>& supplied = {});

}  // namespace t6
