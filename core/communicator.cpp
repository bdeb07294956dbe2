// The registry of device communicators (the CPU's, over MPI, is built by train/parallel/world.cpp).
#include "core/communicator.h"

namespace t6 {

namespace {
// Written by static initializers before main (cuda/nccl_communicator.cu), read afterwards.
CommunicatorFactory& cuda_factory() {
  static CommunicatorFactory factory = nullptr;
  return factory;
}
}  // namespace

void register_communicator_factory(Device device, CommunicatorFactory factory) {
  T6_CHECK(device == Device::CUDA && factory != nullptr,
           "register_communicator_factory: only CUDA registers a communicator; the CPU uses MPI directly");
  cuda_factory() = factory;
}

CommunicatorFactory communicator_factory(Device device) {
  return device == Device::CUDA ? cuda_factory() : nullptr;
}

}  // namespace t6
