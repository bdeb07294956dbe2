#include "train/execution.h"

#include "core/backend.h"
#include "core/cpu/threads.h"

namespace t6 {

const EnumNames<Precision>& precision_names() {
  static const EnumNames<Precision> names = {
      {Precision::FP32, "fp32"}, {Precision::TF32, "tf32"}, {Precision::BF16, "bf16"}};
  return names;
}

namespace {
// Runs before the guard is built, so a bad setting fails before anything changes.
Device checked_device(const ExecutionSettings& s, const char* what) {
  T6_CHECK(s.device == Device::CPU || device_available(s.device), what, " \"", device_name(s.device),
           "\": no usable CUDA GPU (or this t6 was built without CUDA); use \"cpu\"");
  T6_CHECK(s.precision == Precision::FP32 || backend(s.device).multiplies_bf16(), what, " \"",
           device_name(s.device), "\" computes in fp32 only; \"", precision_names().name(s.precision),
           "\" needs a CUDA device");
  return s.device;
}
}  // namespace

ExecutionScope::ExecutionScope(const ExecutionSettings& s, const char* what)
    : device_(checked_device(s, what)), bf16_(s.precision == Precision::BF16) {
  if (s.threads > 0) set_cpu_threads(static_cast<int>(s.threads));
  backend(device_).allow_tf32(s.precision == Precision::TF32);
}

ExecutionScope::~ExecutionScope() { backend(device_).allow_tf32(false); }

}  // namespace t6
