#include "nn/parameter_layout.h"

#include "nn/t6_model.h"

namespace t6 {

std::vector<ParameterSpec> parameter_layout(const ModelConfig& c) { return T6Model::shapes_only(c).parameter_layout(); }

int64_t parameter_total(const ModelConfig& c) { return T6Model::shapes_only(c).parameter_count(); }

double training_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  return 6.0 * static_cast<double>(parameter_total(c)) +
         12.0 * static_cast<double>(c.n_layer * c.n_head * c.head_dim * seq_len);
}

}  // namespace t6
