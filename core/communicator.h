// Collectives over the processes of a data-parallel run (one process per GPU, or several sharing the
// CPU). One interface, two implementations: MPI over CPU tensors (train/parallel/mpi_communicator.cpp)
// and NCCL over CUDA tensors (cuda/nccl_communicator.cu). The trainer asks for the communicator of its
// device (train/parallel/world.h) and never learns which one it got.
//
// Contract: every process of the group calls the same collectives in the same order with tensors of
// the same shape and dtype; tensors are contiguous and on the communicator's device. A collective may
// return before it is done on a device with a queue (NCCL: queued on the backend's stream, ordered
// with the kernels around it), so results are read the usual way (copy_to_host, synchronize).
#pragma once
#include <memory>

#include "core/tensor.h"

namespace t6 {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // 0 … size − 1
  virtual int size() const = 0;
  virtual Device device() const = 0;  // where its tensors live

  // t ← Σ over ranks of t, in place (float32, float64 or int32).
  virtual void all_reduce_sum(Tensor& t) = 0;
  // in holds size() equal chunks; out (one chunk) ← Σ over ranks of chunk rank() of in.
  virtual void reduce_scatter_sum(const Tensor& in, Tensor& out) = 0;
  // out (size() chunks, each of in's numel) ← chunk r is in of rank r.
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // t ← t of rank root, in place.
  virtual void broadcast(Tensor& t, int root) = 0;
  // Returns once every rank has called it (and, on a device, the work queued before it has run).
  virtual void barrier() = 0;

  // The same reductions started without waiting, to overlap them with computation (gradient buckets
  // reduced while backward goes on): they begin after the work queued before them and run beside
  // what follows. wait() finishes every one started so far (on a device with a queue: orders the work
  // queued after it behind them); until then their tensors must stay alive and untouched. They take
  // their place in the order of collectives like the blocking ones.
  virtual void start_all_reduce_sum(Tensor& t) = 0;
  virtual void start_reduce_scatter_sum(const Tensor& in, Tensor& out) = 0;
  virtual void wait() = 0;
};

// A device whose tensors another library moves (CUDA: NCCL) registers how to build its communicator
// from the host one, which it may use to set itself up (NCCL broadcasts its unique id through it).
using CommunicatorFactory = std::unique_ptr<Communicator> (*)(Communicator& host);
void register_communicator_factory(Device device, CommunicatorFactory factory);
// The factory of `device`, or null when none was built in (CUDA without NCCL).
CommunicatorFactory communicator_factory(Device device);

}  // namespace t6
