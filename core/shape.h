// Shapes and strides are vectors of int64 counted in elements (not bytes).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace t6 {

using Shape = std::vector<int64_t>;

int64_t numel_of(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
// Resolves a possibly negative axis against ndim; throws naming `op` when out of range.
int normalize_axis(int axis, int ndim, const char* op);

}  // namespace t6
