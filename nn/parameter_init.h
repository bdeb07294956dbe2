// Where a module's declared parameters get their values (Module::register_parameter). Drawn from a
// seeded Generator, they are filled in declaration order, so one seed always gives the same model.
// Shapes only, nothing is allocated: a model of any size can then be built for its parameters' names and
// shapes alone (nn/parameter_layout.h), which is what `t6 info` reads for configs too large to hold.
#pragma once
#include "core/random.h"

namespace t6 {

class ParameterInit {
 public:
  explicit ParameterInit(Generator& gen) : gen_(&gen) {}
  static ParameterInit shapes_only() { return ParameterInit(nullptr); }

  // A new parameter: uniform(−bound, bound) drawn row by row, or zeros for bound 0 (drawing nothing);
  // undefined when shapes only.
  Tensor make(const Shape& shape, double bound) const {
    if (gen_ == nullptr) return Tensor();
    return bound == 0.0 ? zeros(shape) : uniform(shape, -bound, bound, *gen_);
  }

 private:
  explicit ParameterInit(Generator* gen) : gen_(gen) {}
  Generator* gen_;
};

}  // namespace t6
