// The communicator over CPU tensors: MPI collectives on MPI_COMM_WORLD (Open MPI). Built only when
// CMake finds MPI (T6_MPI). The started collectives are MPI's nonblocking ones (MPI_Iallreduce,
// MPI_Ireduce_scatter_block). Open MPI moves them on only inside MPI calls, so each start also lets
// the ones before it progress; without an asynchronous progress thread, most of the work still
// happens in wait(): on the CPU the overlap is small, and the semantics are those of the blocking calls.
#pragma once
#include <mpi.h>

#include <vector>

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
  void start_all_reduce_sum(Tensor& t) override;
  void start_reduce_scatter_sum(const Tensor& in, Tensor& out) override;
  void wait() override;

 private:
  void make_progress();

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<MPI_Request> started_;
};

}  // namespace t6
