// The bf16 matmul switch: one flag per thread, like the grad mode in autograd/node.cpp.
#include "autograd/mixed_precision.h"

namespace t6 {

namespace {
thread_local bool bf16_matmul = false;
}  // namespace

bool bf16_matmul_enabled() { return bf16_matmul; }

Bf16MatmulGuard::Bf16MatmulGuard(bool enabled) : previous_(bf16_matmul) { bf16_matmul = enabled; }

Bf16MatmulGuard::~Bf16MatmulGuard() { bf16_matmul = previous_; }

}  // namespace t6
