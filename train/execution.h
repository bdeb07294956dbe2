// Where and how a command computes: the device, the precision of its products, the CPU threads. One
// place applies them, for `t6 train`, `eval`, `generate` and `bench` alike.
#pragma once
#include <cstdint>

#include "autograd/mixed_precision.h"
#include "core/device.h"
#include "core/enum_names.h"

namespace t6 {

// fp32: float32 throughout. tf32: float32 matmuls on TF32 tensor cores. bf16: mixed precision, every
// product multiplies bfloat16 copies with float32 accumulation; weights, gradients and optimizer state
// stay float32 (autograd/mixed_precision.h). tf32 and bf16 need a backend that multiplies that way.
enum class Precision : uint8_t { FP32, TF32, BF16 };
const EnumNames<Precision>& precision_names();  // "fp32", "tf32", "bf16"

struct ExecutionSettings {
  Device device = Device::CPU;
  Precision precision = Precision::FP32;
  int64_t threads = 0;  // CPU threads; 0 leaves the count to T6_NUM_THREADS / OMP_NUM_THREADS / all cores
};

// Applies the settings for its lifetime: checks the device is usable, sets the CPU threads and the
// backend's TF32 switch, and holds the bf16 guard. `what` names the setting in messages
// ("train.device", "--device").
class ExecutionScope {
 public:
  ExecutionScope(const ExecutionSettings& settings, const char* what);
  ~ExecutionScope();
  ExecutionScope(const ExecutionScope&) = delete;
  ExecutionScope& operator=(const ExecutionScope&) = delete;
  Device device() const { return device_; }

 private:
  Device device_;
  Bf16MatmulGuard bf16_;
};

}  // namespace t6
