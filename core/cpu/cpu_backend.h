// The CPU backend: core/backend.h in host memory, over OpenBLAS and OpenMP (core/cpu/threads.h sets
// the threads). core/backend.cpp hands it out as backend(Device::CPU); everything else reaches it
// through backend.h.
//
// The methods live by theme in the core/cpu/ files, file for file like the CUDA backend's: memory and
// setup here in cpu_backend.cpp, the matrix multiply in gemm.cpp, and each kernel family in the
// kernels_*.cpp file with the same stem as its twin in cuda/. There a method checks its operands
// (cheap, before any loop runs) and dispatches on dtype to the loop kernel of the same name, a
// function over raw pointers private to that file. Memory comes from a caching allocator
// (caching_allocator.h), and each method opens a KernelTimer scope at its top, which times it while
// `t6 bench train --profile` asks (kernel_timer.h).
#pragma once
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/caching_allocator.h"
#include "core/cpu/kernel_timer.h"

namespace t6 {

namespace cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend();

  Device device() const override { return Device::CPU; }
  std::string describe() const override;

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override;
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override;
  void synchronize() override {}
  MemoryStats memory_stats() const override { return allocator_.stats(); }
  size_t free_memory() const override;  // core/cpu/free_memory.cpp
  bool caches_memory() const { return allocator_.caching(); }
  void release_cached_memory() { allocator_.release_cached(); }  // gives cached blocks back to the system
  void set_kernel_timing(bool on) override { timer_.set_enabled(on); }
  std::vector<KernelTime> kernel_times() override { return timer_.totals(); }

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
  CachingAllocator allocator_{cpu_cache_from_environment()};
  KernelTimer timer_;
};

}  // namespace cpu

// The one CpuBackend, created on first use and never destroyed.
Backend& cpu_backend();

}  // namespace t6
