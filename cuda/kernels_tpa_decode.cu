// FlashTPA decode attention on the GPU, the twin of core/cpu/kernels_tpa_decode.cpp (spec "Inference
// with the factorized KV cache", paper Algorithm 2): one new query per row attends to the cached
// factors A_k, rotated B_k, A_v, B_v directly, so no K or V head is ever formed. This file holds the
// float32 first pass, the merge and the backend method; bfloat16 factors take the tensor-core first
// pass of cuda/kernels_tpa_decode_tc.cu instead, into the same merge (a short bf16 cache: no merge kernel,
// the pass's blocks of a row merge as a thread block cluster).
//
// Split-K, as in flash-decoding: each row's cache is cut into chunks sized so that batch × chunks fills
// the GPU (a batch of one row with a 64K-token cache still occupies every SM), one block per (row, chunk)
// for all heads at once, then a merge kernel per (row, head). A block walks its chunk in tiles of up to
// 32 cached tokens. Each tile's factors A_k, B_k, A_v, B_v first come into shared memory in one
// coalesced pass (a single wait for global memory per tile, not one per dot product), then:
//   1. s1[i,q,s] = <B_q[q], B_k[i,s]>, computed once per token for all heads (q runs over the RQ query
//      factors, or over the H query heads of the plain form), one thread per dot product
//   2. logit[h,i] = logit_scale · Σ_s A_k[i,h,s] Σ_r A_q[h,r] s1[i,r,s]   (plain: Σ_s A_k[i,h,s] s1[i,h,s])
//   3. online softmax per head, one warp per head with a token per lane: running max, running sum, and
//      the factor that rescales the accumulator to the new max
//   4. acc[h,:] = correction[h] · acc[h,:] + Σ_i Σ_u p[h,i] A_v[i,h,u] B_v[i,u,:]
// The merge rescales each chunk's (max, sum, acc) to the row's overall max, as the CPU kernel does.
// Results are deterministic (no atomics; the chunking depends only on the shapes and the GPU), and
// agree with the CPU to float32 rounding, since the summation order differs.
#include <algorithm>
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/kernel_utils.cuh"
#include "cuda/tpa_decode_split.h"

namespace t6 {

namespace {

// A block works through its tiles in dependent steps (the phases below, barrier to barrier), and at
// batch 1 a long cache still gives only about two blocks per multiprocessor, so the block is as wide as
// CUDA allows: each step then takes one or two rounds of its threads (docs/PERF.md has the timings by
// width). The merge reads every chunk's state for its (row, head): wide too, so each thread sums fewer
// chunks in turn.
constexpr int kDecodeThreads = 1024;
constexpr int kMergeThreads = 1024;
constexpr int64_t kMaxTile = 32;              // tokens per tile: one per lane in the softmax step
constexpr size_t kDefaultShared = 48 * 1024;  // dynamic shared memory a launch may use without opting in

// Floats of shared memory per block, in the order the kernel lays them out (acc and B_v first, so
// that their rows start on 16 bytes when dh % 4 == 0, for float4 reads).
int64_t shared_floats(const DecodeShape& s, int64_t tile) {
  return s.H * s.dh           // acc        [H,dh]
         + tile * s.R * s.dh  // B_v tile   [tile,R,dh]
         + s.Q * s.dh         // B_q        [Q,dh]
         + s.H * s.RQ         // A_q        [H,RQ]
         + tile * s.R * (s.dh + 1)  // B_k tile [tile,R,dh], rows padded by one against bank conflicts
         + 2 * tile * s.H * s.R     // A_k, A_v tiles [tile,H,R]
         + tile * s.Q * s.R   // s1         [tile,Q,R]
         + s.H * tile         // logit → p  [H,tile]
         + s.H * tile * s.R   // p·A_v      [H,tile,R]
         + 3 * s.H;           // max, sum, correction [H]
}

}  // namespace

namespace kernels {

// tpa_decode_attention, first pass: block x = row b · chunks + chunk c attends to the cached tokens
// [c·chunk, min((c+1)·chunk, lengths[b])) of row b and writes its softmax state to partials.
__global__ void tpa_decode_attention(const float* __restrict__ a_q, const float* __restrict__ b_q,
                                     const float* __restrict__ a_k, const float* __restrict__ b_k,
                                     const float* __restrict__ a_v, const float* __restrict__ b_v,
                                     const int32_t* __restrict__ lengths, float* __restrict__ partials,
                                     DecodeShape s) {
  wait_for_previous_kernel();  // dependent launch: every input comes from the kernels before
  allow_next_kernel();
  const int64_t b = blockIdx.x / s.chunks, c = blockIdx.x % s.chunks;
  const int64_t begin = c * s.chunk, end = min(begin + s.chunk, int64_t{lengths[b]});
  if (begin >= end) return;  // a chunk past this row's length: chunks cover the whole capacity
  const int H = s.H, RQ = s.RQ, R = s.R, dh = s.dh, Q = s.Q, tile = s.tile;
  const bool factorized = RQ > 0;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;

  extern __shared__ __align__(16) float shared[];
  float* acc = shared;              // [H,dh]
  float* bv = acc + H * dh;         // [tile,R,dh]
  float* bq = bv + tile * R * dh;   // [Q,dh]
  float* aq = bq + Q * dh;          // [H,RQ]
  float* bk = aq + H * RQ;          // [tile,R,dh+1]
  float* ak = bk + tile * R * (dh + 1);  // [tile,H,R]
  float* av = ak + tile * H * R;    // [tile,H,R]
  float* s1 = av + tile * H * R;    // [tile,Q,R]
  float* p = s1 + tile * Q * R;     // [H,tile]
  float* pav = p + H * tile;        // [H,tile,R]
  float* run_max = pav + H * tile * R;  // [H]
  float* run_sum = run_max + H;     // [H]
  float* correction = run_sum + H;  // [H]

  for (int e = threadIdx.x; e < Q * dh; e += blockDim.x) bq[e] = b_q[b * Q * dh + e];
  for (int e = threadIdx.x; e < H * RQ; e += blockDim.x) aq[e] = a_q[b * H * RQ + e];
  for (int e = threadIdx.x; e < H * dh; e += blockDim.x) acc[e] = 0.f;
  for (int h = threadIdx.x; h < H; h += blockDim.x) run_max[h] = -INFINITY, run_sum[h] = 0.f;
  __syncthreads();

  for (int64_t t0 = begin; t0 < end; t0 += tile) {
    const int n = static_cast<int>(min(int64_t{tile}, end - t0));
    const int64_t token = b * s.M + t0;  // the tile's first token; its factors are contiguous

    // 0. the tile's factors into shared memory
    for (int e = threadIdx.x; e < n * R * dh; e += blockDim.x) {
      bk[e / dh * (dh + 1) + e % dh] = b_k[token * R * dh + e];
      bv[e] = b_v[token * R * dh + e];
    }
    for (int e = threadIdx.x; e < n * H * R; e += blockDim.x) {
      ak[e] = a_k[token * H * R + e];
      av[e] = a_v[token * H * R + e];
    }
    __syncthreads();

    // 1. s1, one thread per dot product. Consecutive threads take consecutive B_k rows (i, s) against
    //    one B_q row q: the warp reads one broadcast B_q word and B_k words in distinct banks per step.
    for (int d = threadIdx.x; d < n * Q * R; d += blockDim.x) {
      const int q = d / (n * R), row = d % (n * R);  // row = i·R + s
      const float* key = bk + row * (dh + 1);
      float even = 0.f, odd = 0.f;  // two chains of additions, not one of dh
      int j = 0;
      for (; j + 1 < dh; j += 2) even += bq[q * dh + j] * key[j], odd += bq[q * dh + j + 1] * key[j + 1];
      if (j < dh) even += bq[q * dh + j] * key[j];
      s1[((row / R) * Q + q) * R + row % R] = even + odd;  // s1[i,q,s]
    }
    __syncthreads();

    // 2. logits, one thread per (head, token)
    for (int e = threadIdx.x; e < H * n; e += blockDim.x) {
      const int h = e / n, i = e % n;
      const float* ak_h = ak + (i * H + h) * R;  // A_k[i,h,:]
      float z = 0.f;
      for (int si = 0; si < R; ++si) {
        float mixed = 0.f;  // Σ_r A_q[h,r] s1[i,r,s], or s1[i,h,s] for plain heads
        if (factorized) {
          for (int r = 0; r < RQ; ++r) mixed += aq[h * RQ + r] * s1[(i * Q + r) * R + si];
        } else {
          mixed = s1[(i * Q + h) * R + si];
        }
        z += ak_h[si] * mixed;
      }
      p[h * tile + i] = z * s.logit_scale;
    }
    __syncthreads();

    // 3. online softmax: one warp per head, token i on lane i
    for (int h = warp; h < H; h += warps) {
      const float logit = lane < n ? p[h * tile + lane] : -INFINITY;
      const float new_max = fmaxf(run_max[h], warp_reduce(logit, Max{}));
      const float weight = lane < n ? expf(logit - new_max) : 0.f;
      const float tile_sum = warp_reduce(weight, Sum{});
      if (lane < n) p[h * tile + lane] = weight;
      if (lane == 0) {
        const float factor = expf(run_max[h] - new_max);  // exp(−inf) = 0 on the first tile
        correction[h] = factor;
        run_sum[h] = run_sum[h] * factor + tile_sum;
        run_max[h] = new_max;
      }
    }
    __syncthreads();

    // 4a. p[h,i] · A_v[i,h,u], read in A_v's token-major order
    for (int e = threadIdx.x; e < n * H * R; e += blockDim.x) {
      const int i = e / (H * R), h = e / R % H, u = e % R;
      pav[(h * tile + i) * R + u] = p[h * tile + i] * av[e];
    }
    __syncthreads();

    // 4b. acc[h,:] rescaled, plus Σ over the tile's (token, u) = k of pav[h,k] B_v[k,:]: an
    //     [H, n·R] × [n·R, dh] product. A thread takes 4 adjacent columns of one head, so each step
    //     loads one (broadcast) pav word and one float4 of B_v for 4 multiply-adds; this step had
    //     bound the kernel on shared-memory loads when each output loaded both operands itself.
    if (dh % 4 == 0) {
      const int quads = dh / 4;
      for (int e = threadIdx.x; e < H * quads; e += blockDim.x) {
        const int h = e / quads, j = e % quads * 4;
        const float* w = pav + h * tile * R;  // [n,R] of head h: (i, u) flattened as B_v's rows
        float4 a = *reinterpret_cast<const float4*>(acc + h * dh + j);
        const float f = correction[h];
        a.x *= f, a.y *= f, a.z *= f, a.w *= f;
        for (int k = 0; k < n * R; ++k) {
          const float wk = w[k];
          const float4 v = *reinterpret_cast<const float4*>(bv + k * dh + j);
          a.x += wk * v.x, a.y += wk * v.y, a.z += wk * v.z, a.w += wk * v.w;
        }
        *reinterpret_cast<float4*>(acc + h * dh + j) = a;
      }
    } else {
      for (int e = threadIdx.x; e < H * dh; e += blockDim.x) {
        const int h = e / dh, j = e % dh;
        const float* w = pav + h * tile * R;
        float a = acc[e] * correction[h];
        for (int k = 0; k < n * R; ++k) a += w[k] * bv[k * dh + j];
        acc[e] = a;
      }
    }
    __syncthreads();  // the next tile overwrites s1, p, pav and bv
  }

  float* state = partials + blockIdx.x * partial_floats(s);  // max [H], sum [H], acc [H,dh]
  for (int h = threadIdx.x; h < H; h += blockDim.x) state[h] = run_max[h], state[H + h] = run_sum[h];
  for (int e = threadIdx.x; e < H * dh; e += blockDim.x) state[2 * H + e] = acc[e];
}

// tpa_decode_attention, second pass: one block per (row, head) rescales the states of the row's chunks
// that saw tokens to their overall max and normalizes: out = value_scale · Σ_c f_c acc_c / Σ_c f_c sum_c.
__global__ void tpa_decode_merge(const float* __restrict__ partials, const int32_t* __restrict__ lengths,
                                 float* __restrict__ out, int64_t batch, DecodeShape s) {
  wait_for_previous_kernel();
  allow_next_kernel();
  const int64_t H = s.H, dh = s.dh, stride = partial_floats(s);
  for (int64_t row = blockIdx.x; row < batch * H; row += gridDim.x) {
    const int64_t b = row / H, h = row % H;
    const int64_t used = (lengths[b] + s.chunk - 1) / s.chunk;
    const float* first = partials + b * s.chunks * stride;  // chunk c's state at first + c·stride
    float overall = -INFINITY;
    for (int64_t c = threadIdx.x; c < used; c += blockDim.x) overall = fmaxf(overall, first[c * stride + h]);
    overall = block_reduce(overall, Max{}, -INFINITY);
    // Each chunk's rescaling factor once, in shared memory, for the sum and for every output column.
    extern __shared__ float factors[];  // [chunks], then the slices' partial outputs [slices, dh]
    float total = 0.f;
    for (int64_t c = threadIdx.x; c < used; c += blockDim.x) {
      factors[c] = expf(first[c * stride + h] - overall);
      total += factors[c] * first[c * stride + H + h];
    }
    total = block_reduce(total, Sum{}, 0.f);  // its barrier also publishes `factors`
    const float normalizer = total > 0.f ? s.value_scale / total : 0.f;
    // The threads split into slices of dh columns, each slice summing every slices-th chunk, so a long
    // row's many chunks are read by all threads at once; then the slices' sums are added.
    float* slice_sums = factors + s.chunks;
    const int slices = max(1, static_cast<int>(blockDim.x / dh));
    for (int64_t t = threadIdx.x; t < slices * dh; t += blockDim.x) {
      const int64_t j = t % dh, slice = t / dh;
      float o = 0.f;
#pragma unroll 4
      for (int64_t c = slice; c < used; c += slices) o += factors[c] * first[c * stride + 2 * H + h * dh + j];
      slice_sums[t] = o;
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < dh; j += blockDim.x) {
      float o = 0.f;
      for (int slice = 0; slice < slices; ++slice) o += slice_sums[slice * dh + j];
      out[row * dh + j] = o * normalizer;
    }
    __syncthreads();  // the next row's factors and sums overwrite these
  }
}

}  // namespace kernels

namespace {

// The float32 first pass's tiles and chunks: fills s.tile, s.chunk and s.chunks for `batch` rows.
DecodeShape split_tpa_decode_f32(DecodeShape s, int64_t batch) {
  // The largest tile whose shared memory fits the GPU; only very wide heads need a smaller one.
  // Read once: this runs in every layer of every decode step.
  static const int shared_limit = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  static const int sms = device_attribute(cudaDevAttrMultiProcessorCount);
  s.tile = kMaxTile;
  while (s.tile > 1 && shared_floats(s, s.tile) * sizeof(float) > static_cast<size_t>(shared_limit)) s.tile /= 2;
  const size_t shared_bytes = static_cast<size_t>(shared_floats(s, s.tile)) * sizeof(float);
  T6_CHECK(shared_bytes <= static_cast<size_t>(shared_limit), "cuda tpa_decode_attention: ", s.H, " heads of ",
           s.dh, " with query rank ", s.RQ, " and rank ", s.R, " need ", shared_bytes,
           " bytes of shared memory per block, more than this GPU's ", shared_limit,
           "; decode such a model on the CPU");
  // Chunks: about two blocks per SM over the batch, each at least one tile. They are cut from the
  // capacity M, not from the longest row, whose length lives on the GPU and would cost a synchronization
  // to read: a row shorter than M keeps fewer blocks busy, and the blocks past its length return at once.
  const int64_t chunks_wanted = (2 * int64_t{sms} + batch - 1) / batch;
  s.chunk = ((s.M + chunks_wanted - 1) / chunks_wanted + s.tile - 1) / s.tile * s.tile;
  s.chunks = (s.M + s.chunk - 1) / s.chunk;
  return s;
}

// The float32 first pass: B·chunks partial states.
void tpa_decode_partials_f32(const DecodeShape& s, int64_t batch, const Tensor& a_q, const Tensor& b_q,
                             const Tensor& a_k, const Tensor& b_k, const Tensor& a_v, const Tensor& b_v,
                             const Tensor& lengths, float* partials, cudaStream_t stream) {
  const size_t shared_bytes = static_cast<size_t>(shared_floats(s, s.tile)) * sizeof(float);
  static size_t shared_allowed = kDefaultShared;  // the kernel's dynamic shared-memory limit, raised as needed
  if (shared_bytes > shared_allowed) {
    T6_CUDA_CHECK(cudaFuncSetAttribute(kernels::tpa_decode_attention, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(shared_bytes)));
    shared_allowed = shared_bytes;
  }
  launch_dependent(kernels::tpa_decode_attention, dim3(static_cast<unsigned>(batch * s.chunks)), dim3(kDecodeThreads),
                   shared_bytes, stream, s.RQ > 0 ? device_ptr<const float>(a_q) : nullptr,
                   device_ptr<const float>(b_q), device_ptr<const float>(a_k), device_ptr<const float>(b_k),
                   device_ptr<const float>(a_v), device_ptr<const float>(b_v), device_ptr<const int32_t>(lengths),
                   partials, s);
}

}  // namespace

void CudaBackend::tpa_decode_attention(const TPADecode& p, const Tensor& a_q, const Tensor& b_q, const Tensor& a_k,
                                       const Tensor& b_k, const Tensor& a_v, const Tensor& b_v,
                                       const Tensor& lengths, Tensor& out) {
  const auto timing = timer_.time("tpa_decode_attention");
  const bool factorized = p.q_rank > 0;
  // float32 factors, or bfloat16 factors (the tensor-core pass); the output is float32 either way.
  const DType factors = b_q.dtype() == DType::BF16 ? DType::BF16 : DType::F32;
  require_dtype("tpa_decode_attention", out, DType::F32);
  for (const Tensor* t : {&b_q, &a_k, &b_k, &a_v, &b_v}) require_dtype("tpa_decode_attention (factors)", *t, factors);
  if (factorized) require_dtype("tpa_decode_attention (factors)", a_q, factors);
  require_dtype("tpa_decode_attention (lengths)", lengths, DType::I32);
  if (out.numel() == 0) return;

  DecodeShape s{};
  s.H = p.heads, s.RQ = p.q_rank, s.R = p.rank, s.dh = p.head_dim, s.M = p.capacity;
  s.Q = factorized ? p.q_rank : p.heads;
  s.logit_scale = static_cast<float>(p.logit_scale), s.value_scale = static_cast<float>(p.value_scale);
  const int64_t B = p.batch;

  s = factors == DType::BF16 ? split_tpa_decode_bf16(s, B) : split_tpa_decode_f32(s, B);
  // A row's chunks merged on chip (a short bf16 cache) need no partial states and no merge kernel.
  DeviceBuffer partials(allocator_,
                        s.cluster ? 0 : static_cast<size_t>(B * s.chunks * partial_floats(s)) * sizeof(float));
  if (factors == DType::BF16) {
    tpa_decode_bf16(s, B, factorized ? a_q.raw_data() : nullptr, b_q.raw_data(), a_k.raw_data(), b_k.raw_data(),
                    a_v.raw_data(), b_v.raw_data(), device_ptr<const int32_t>(lengths), partials.as<float>(),
                    device_ptr<float>(out), stream_);
    if (s.cluster) return;
  } else {
    tpa_decode_partials_f32(s, B, a_q, b_q, a_k, b_k, a_v, b_v, lengths, partials.as<float>(), stream_);
  }

  // The merge's shared memory: one factor per chunk and, per slice of dh columns, a partial output.
  const int merge_threads = kMergeThreads;
  const int64_t merge_slices = std::max<int64_t>(1, merge_threads / s.dh);
  const size_t merge_bytes = static_cast<size_t>(s.chunks + merge_slices * s.dh) * sizeof(float);
  T6_CHECK(merge_bytes <= kDefaultShared, "cuda tpa_decode_attention: head_dim ", s.dh, " over ", s.chunks,
           " chunks needs ", merge_bytes, " bytes of shared memory in the merge; decode such a model on the CPU");
  launch_dependent(kernels::tpa_decode_merge, dim3(row_grid(B * s.H)), dim3(merge_threads), merge_bytes, stream_,
                   static_cast<const float*>(partials.as<float>()), device_ptr<const int32_t>(lengths),
                   device_ptr<float>(out), B, s);
}

}  // namespace t6
