// The CUDA backend: core/backend.h on one NVIDIA GPU (device 0, or the one a rank picks by its local rank). Every kernel and copy runs on one
// stream, in order, and cuBLAS is bound to the same stream, so no operation needs an event or a
// synchronization except where data comes back to the host. Uploads go through pinned staging memory
// (pinned_staging.h), so they do not wait either, and ids out of range found by kernels are reported at
// the next wait (bad_ids.h): a training or decode step waits for the GPU only to read a value back.
//
// The methods live by theme in the cuda/ files: memory and setup here in cuda_backend.cu, the matrix
// multiply in gemm.cu, and each kernel family in its kernels_*.cu file, where the __global__ kernel
// (in namespace t6::kernels) has the same name as the method that launches it.
#pragma once
#include <optional>
#include <map>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/backend.h"
#include "cuda/bad_ids.h"
#include "cuda/caching_allocator.h"
#include "cuda/kernel_timer.h"
#include "cuda/pinned_staging.h"

namespace t6 {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int ordinal);  // the GPU this process uses
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::CUDA; }
  std::string describe() const override { return description_; }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override;
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override;
  void synchronize() override;
  MemoryStats memory_stats() const override;
  size_t free_memory() const override;
  void allow_tf32(bool allow) override { tf32_ = allow; }
  bool multiplies_bf16() const override { return true; }
  // the fused kernels keep a head row in registers
  bool prefers_fused_attention(int64_t head_dim) const override { return head_dim <= kMaxFusedHeadDim; }
  bool checks_ids_at_once() const override { return false; }
  static constexpr int64_t kMaxFusedHeadDim = 128;
  void set_kernel_timing(bool on) override { timer_.set_enabled(on); }

  bool supports_graphs() const override { return true; }
  void begin_graph_capture() override;
  int64_t end_graph_capture() override;
  void replay_graph(int64_t graph) override;
  void release_graph(int64_t graph) override;
  int64_t graph_operations(int64_t graph) const override;
  std::vector<KernelTime> kernel_times() override { return timer_.totals(); }

  // For the NCCL communicator (nccl_communicator.cu), whose collectives queue on the same stream.
  cudaStream_t stream() const { return stream_; }
  int ordinal() const { return ordinal_; }

  void fill(Tensor& out, double value) override;
  void strided_copy(const Tensor& src, Tensor& dst) override;
  void cast(const Tensor& src, Tensor& dst) override;

  void unary(UnaryOp op, const Tensor& x, Tensor& y, double alpha) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void axpy(double alpha, const Tensor& x, Tensor& y) override;

  void sum_axis(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner) override;
  double sum_of_squares(const std::vector<Tensor>& tensors) override;

  void gemm(const Gemm& g, const Tensor& a, const Tensor& b, Tensor& c) override;

  void softmax_forward(const Tensor& x, Tensor& y, double scale, bool causal, int64_t tq) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, double scale) override;
  void log_softmax_forward(const Tensor& x, Tensor& y) override;
  void log_softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& grad_losses,
                              Tensor& glogits) override;
  void count_targets(const Tensor& targets, int64_t vocab, Tensor& divisor) override;
  void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& gout, Tensor& gweight) override;
  void rms_norm_forward(const Tensor& x, Tensor& y, Tensor& rstd, double eps) override;
  void rms_norm_backward(const Tensor& x, const Tensor& rstd, const Tensor& gy, Tensor& gx) override;
  void rope(const Tensor& x, const Tensor& positions, Tensor& y, int64_t inner, bool inverse) override;
  void scatter_rows(const Tensor& values, const Tensor& slots, Tensor& buffer) override;
  void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& gout, Tensor& ggate, Tensor& gup) override;
  void tpa_product_forward(const TPAProduct& p, const Tensor& a, const Tensor& b, Tensor& out) override;
  void tpa_product_backward(const TPAProduct& p, const Tensor& a, const Tensor& b, const Tensor& gout, Tensor& ga,
                            Tensor& gb) override;
  void flash_attention_forward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                               Tensor& lse) override;
  void flash_attention_backward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& out, const Tensor& lse, const Tensor& gout, Tensor& gq, Tensor& gk,
                                Tensor& gv) override;
  void tpa_flash_attention_forward(const TPAFlashAttention& p, const TPAFactorTensors& f, Tensor& out,
                                   Tensor& lse) override;
  void tpa_flash_attention_backward(const TPAFlashAttention& p, const TPAFactorTensors& f, const Tensor& out,
                                    const Tensor& lse, const Tensor& gout, TPAFactorTensors& grads) override;
  void adamw_step(std::vector<AdamWSlot>& slots, const AdamWHyper& h) override;
  void tpa_decode_attention(const TPADecode& p, const Tensor& a_q, const Tensor& b_q, const Tensor& a_k,
                            const Tensor& b_k, const Tensor& a_v, const Tensor& b_v, const Tensor& lengths,
                            Tensor& out) override;
  void decode_linear(const Tensor& x, const Tensor& w, const Tensor& residual, std::optional<double> norm_eps,
                     Tensor& out) override;
  void decode_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, std::optional<double> norm_eps,
                     Tensor& out) override;
  void decode_tpa_factors(const TPAFactors& p, Tensor& x, const Tensor& embedding, const Tensor& tokens,
                          const Tensor& w, const Tensor& positions, Tensor& a_q, Tensor& q, Tensor& a_k, Tensor& b_k,
                          Tensor& a_v, Tensor& b_v) override;

 private:
  void wait_for_stream();  // every wait for the GPU goes through here: it reports bad ids (bad_ids.h)
  void forbid_while_capturing(const char* what) const;

  // Captured graphs (cuda_graphs.cu) by id; the id also names the allocator pool of the graph.
  struct Graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
  };
  std::map<int64_t, Graph> graphs_;
  int64_t capturing_ = 0;  // the id being captured, 0 when none
  int64_t next_graph_ = 1;
  // Pinned host memory that downloads land in before the copy to the caller's buffer: a DMA from
  // the device into pageable memory runs at a fraction of the speed (decode reads its logits back
  // every step). Grown on demand up to kMaxPinnedDownload; larger copies go directly.
  static constexpr size_t kMaxPinnedDownload = size_t{16} << 20;
  void* download_ = nullptr;
  size_t download_bytes_ = 0;

  int ordinal_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  CachingAllocator allocator_;  // after stream_: it is built from it
  KernelTimer timer_{stream_};
  PinnedStaging staging_{stream_};
  BadIdReporter bad_ids_{stream_};
  // adamw_step's table of slot pointers and sizes on the GPU, and the bytes it was uploaded from
  // (kernels_adamw.cu): uploaded again only when the parameter tensors change. After allocator_,
  // so the block goes back before the allocator does.
  std::optional<DeviceBuffer> adamw_table_;
  std::vector<unsigned char> adamw_table_bytes_;
  bool tf32_ = false;
  std::string description_;
};

}  // namespace t6
