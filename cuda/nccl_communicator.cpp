// The communicator over CUDA tensors: NCCL collectives queued on a communication stream of their
// own, each behind the work queued on the CUDA backend's (compute) stream before it (an event), so
// the host never waits for them. A blocking collective then queues the compute stream's later work
// behind it; a started one does not, and runs beside the kernels that follow (backward) until wait()
// queues the compute stream behind everything started. One stream for all collectives keeps them in
// the order they were called, as NCCL needs. The communicator is set up through the host one: rank 0
// makes NCCL's unique id and broadcasts it over MPI. Built only when CMake finds NCCL (T6_NCCL);
// registered with core/communicator.h at start-up.
#include <nccl.h>

#include <cstring>

#include "core/backend.h"
#include "core/communicator.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"

namespace t6 {

namespace {

#define T6_NCCL_CHECK(call) check_nccl((call), #call)

void check_nccl(ncclResult_t status, const char* call) {
  if (status == ncclSuccess) return;
  throw Error(cat("NCCL error in ", call, ": ", ncclGetErrorString(status), " (", ncclGetLastError(nullptr),
                  "); NCCL_DEBUG=WARN shows more"));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::BF16: return ncclBfloat16;
  }
  throw Error("NCCL: unknown dtype");
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(Communicator& host)
      : backend_(static_cast<CudaBackend&>(backend(Device::CUDA))), rank_(host.rank()), size_(host.size()) {
    ncclUniqueId id{};
    static_assert(sizeof id % sizeof(int32_t) == 0);
    Tensor bytes = zeros({static_cast<int64_t>(sizeof id / sizeof(int32_t))}, DType::I32);
    if (rank_ == 0) {
      T6_NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(bytes.raw_data(), &id, sizeof id);
    }
    host.broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof id);
    T6_CUDA_CHECK(cudaSetDevice(backend_.ordinal()));
    T6_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
    // The highest priority: a collective's kernels start as soon as they may, between backward's.
    int lowest = 0, highest = 0;
    T6_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lowest, &highest));
    T6_CUDA_CHECK(cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, highest));
    T6_CUDA_CHECK(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming));
    T6_CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    ncclCommDestroy(comm_);
    cudaEventDestroy(comm_done_);
    cudaEventDestroy(compute_done_);
    cudaStreamDestroy(comm_stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const override { return Device::CUDA; }

  void all_reduce_sum(Tensor& t) override {
    start_all_reduce_sum(t);
    wait();
  }
  void reduce_scatter_sum(const Tensor& in, Tensor& out) override {
    start_reduce_scatter_sum(in, out);
    wait();
  }
  void start_all_reduce_sum(Tensor& t) override {
    check(t, "all_reduce_sum");
    T6_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                ncclSum, comm_, behind_compute()));
    t.storage()->bump_version();
  }
  void start_reduce_scatter_sum(const Tensor& in, Tensor& out) override {
    check(in, "reduce_scatter_sum");
    check(out, "reduce_scatter_sum");
    T6_CHECK(in.numel() == out.numel() * size_ && in.dtype() == out.dtype(), "reduce_scatter_sum: ", in.numel(),
             " elements in, ", out.numel(), " out on ", size_, " ranks");
    T6_NCCL_CHECK(ncclReduceScatter(in.raw_data(), out.raw_data(), static_cast<size_t>(out.numel()),
                                    nccl_type(in.dtype()), ncclSum, comm_, behind_compute()));
    out.storage()->bump_version();
  }
  // The compute stream's work queued from now on runs after every collective queued so far.
  void wait() override {
    T6_CUDA_CHECK(cudaEventRecord(comm_done_, comm_stream_));
    T6_CUDA_CHECK(cudaStreamWaitEvent(backend_.stream(), comm_done_, 0));
  }
  void all_gather(const Tensor& in, Tensor& out) override {
    check(in, "all_gather");
    check(out, "all_gather");
    T6_CHECK(out.numel() == in.numel() * size_ && in.dtype() == out.dtype(), "all_gather: ", in.numel(),
             " elements in, ", out.numel(), " out on ", size_, " ranks");
    T6_NCCL_CHECK(ncclAllGather(in.raw_data(), out.raw_data(), static_cast<size_t>(in.numel()), nccl_type(in.dtype()),
                                comm_, behind_compute()));
    out.storage()->bump_version();
    wait();
  }
  void broadcast(Tensor& t, int root) override {
    check(t, "broadcast");
    T6_NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                root, comm_, behind_compute()));
    t.storage()->bump_version();
    wait();
  }
  // NCCL has no barrier: an all-reduce of one value is one, once the stream has run it.
  void barrier() override {
    Tensor one = ones({1}, DType::F32, Device::CUDA);
    all_reduce_sum(one);
    backend_.synchronize();
  }

 private:
  // The communication stream, after the work queued on the compute stream so far.
  cudaStream_t behind_compute() {
    T6_CUDA_CHECK(cudaEventRecord(compute_done_, backend_.stream()));
    T6_CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, compute_done_, 0));
    return comm_stream_;
  }
  static void check(const Tensor& t, const char* what) {
    T6_CHECK(t.device() == Device::CUDA && t.is_contiguous(), what, ": the NCCL communicator takes contiguous CUDA tensors");
  }

  CudaBackend& backend_;
  int rank_, size_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr;
};

std::unique_ptr<Communicator> create_nccl_communicator(Communicator& host) {
  return std::make_unique<NcclCommunicator>(host);
}

struct Registration {
  Registration() { register_communicator_factory(Device::CUDA, create_nccl_communicator); }
};
const Registration registration;

}  // namespace

}  // namespace t6
