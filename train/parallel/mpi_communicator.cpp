#include "train/parallel/mpi_communicator.h"

#include <climits>

namespace t6 {

namespace {

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    default: throw Error(cat("MPI collectives take float32, float64 or int32 tensors, got ", dtype_name(dtype)));
  }
}

// MPI counts are ints: a tensor of more than 2^31 − 1 elements would need to be sent in parts.
int mpi_count(const Tensor& t, const char* what) {
  T6_CHECK(t.device() == Device::CPU && t.is_contiguous(), what, ": the MPI communicator takes contiguous CPU tensors");
  T6_CHECK(t.numel() <= INT_MAX, what, ": ", t.numel(), " elements are more than one MPI message holds (2^31 − 1)");
  return static_cast<int>(t.numel());
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

void MpiCommunicator::all_reduce_sum(Tensor& t) {
  MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), mpi_count(t, "all_reduce_sum"), mpi_type(t.dtype()), MPI_SUM, comm_);
  t.storage()->bump_version();
}

void MpiCommunicator::reduce_scatter_sum(const Tensor& in, Tensor& out) {
  const int n = mpi_count(out, "reduce_scatter_sum");
  T6_CHECK(in.numel() == static_cast<int64_t>(n) * size_ && in.dtype() == out.dtype(), "reduce_scatter_sum: ",
           in.numel(), " elements in, ", n, " out on ", size_, " ranks");
  MPI_Reduce_scatter_block(in.raw_data(), out.raw_data(), n, mpi_type(in.dtype()), MPI_SUM, comm_);
  out.storage()->bump_version();
}

void MpiCommunicator::all_gather(const Tensor& in, Tensor& out) {
  const int n = mpi_count(in, "all_gather");
  T6_CHECK(out.numel() == static_cast<int64_t>(n) * size_ && in.dtype() == out.dtype(), "all_gather: ", n,
           " elements in, ", out.numel(), " out on ", size_, " ranks");
  MPI_Allgather(in.raw_data(), n, mpi_type(in.dtype()), out.raw_data(), n, mpi_type(out.dtype()), comm_);
  out.storage()->bump_version();
}

void MpiCommunicator::broadcast(Tensor& t, int root) {
  MPI_Bcast(t.raw_data(), mpi_count(t, "broadcast"), mpi_type(t.dtype()), root, comm_);
  t.storage()->bump_version();
}

void MpiCommunicator::barrier() { MPI_Barrier(comm_); }

// The buffers belong to MPI until wait(); their version changes now, as the write has begun.
void MpiCommunicator::start_all_reduce_sum(Tensor& t) {
  const int n = mpi_count(t, "start_all_reduce_sum");
  MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), n, mpi_type(t.dtype()), MPI_SUM, comm_, &started_.emplace_back());
  t.storage()->bump_version();
  make_progress();
}

void MpiCommunicator::start_reduce_scatter_sum(const Tensor& in, Tensor& out) {
  const int n = mpi_count(out, "start_reduce_scatter_sum");
  T6_CHECK(in.numel() == static_cast<int64_t>(n) * size_ && in.dtype() == out.dtype(), "start_reduce_scatter_sum: ",
           in.numel(), " elements in, ", n, " out on ", size_, " ranks");
  MPI_Ireduce_scatter_block(in.raw_data(), out.raw_data(), n, mpi_type(in.dtype()), MPI_SUM, comm_,
                            &started_.emplace_back());
  out.storage()->bump_version();
  make_progress();
}

void MpiCommunicator::make_progress() {
  int done = 0;
  MPI_Testall(static_cast<int>(started_.size()), started_.data(), &done, MPI_STATUSES_IGNORE);
  if (done) started_.clear();
}

void MpiCommunicator::wait() {
  MPI_Waitall(static_cast<int>(started_.size()), started_.data(), MPI_STATUSES_IGNORE);
  started_.clear();
}

}  // namespace t6
