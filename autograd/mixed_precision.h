// bf16 mixed precision: a thread-local switch, scoped like NoGradGuard, under which matmul on a GPU
// multiplies bfloat16 copies of its float32 inputs with float32 accumulation and a float32 result.
// Weights, gradients and optimizer state stay float32 (the "master" copies); only the matmul inputs
// are rounded. Everything else (softmax, norms, the loss) is float32 anyway. On the CPU the switch
// has no effect: the CPU gemm has no bfloat16 kernel, so matmul there stays float32.
#pragma once

namespace t6 {

bool bf16_matmul_enabled();

// Sets the switch to `enabled` for a scope and restores the previous value on exit, so guards nest
// (an inner Bf16MatmulGuard(false) runs a sub-scope in float32).
class Bf16MatmulGuard {
 public:
  explicit Bf16MatmulGuard(bool enabled = true);
  ~Bf16MatmulGuard();
  Bf16MatmulGuard(const Bf16MatmulGuard&) = delete;
  Bf16MatmulGuard& operator=(const Bf16MatmulGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace t6
