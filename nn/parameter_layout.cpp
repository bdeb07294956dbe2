#include "nn/parameter_layout.h"

#include "nn/t6_model.h"

namespace t6 {

std::vector<ParameterSpec> parameter_layout(const ModelConfig& c) { return T6Model::shapes_only(c).parameter_layout(); }

int64_t parameter_total(const ModelConfig& c) { return T6Model::shapes_only(c).parameter_count(); }

}  // namespace t6
