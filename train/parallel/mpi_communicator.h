// The communicator over CPU tensors: MPI collectives on MPI_COMM_WORLD (Open MPI). Built only when
// CMake finds MPI (T6_MPI).
#pragma once
#include <mpi.h>

#include "core/communicator.h"

namespace t6 {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const override { return Device::CPU; }
  void all_reduce_sum(Tensor& t) override;
  void reduce_scatter_sum(const Tensor& in, Tensor& out) override;
  void all_gather(const Tensor& in, Tensor& out) override;
  void broadcast(Tensor& t, int root) override;
  void barrier() override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace t6
