#include "core/device.h"

#include "core/error.h"

namespace t6 {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  throw Error(cat("unknown device \"", name, "\": allowed values are \"cpu\" and \"cuda\""));
}

}  // namespace t6
