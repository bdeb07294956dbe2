#include "core/device.h"

#include "core/error.h"

namespace t6 {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  throw Error(cat("unknown device \"", name, "\": allowed values are \"cpu\" and \"cuda\""));
}

const EnumNames<Device>& device_names() {
  static const EnumNames<Device> names = {{Device::CPU, "cpu"}, {Device::CUDA, "cuda"}};
  return names;
}

}  // namespace t6
