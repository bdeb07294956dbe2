// Fused causal attention on the GPU (FlashAttention-2; the CPU twin is
// core/cpu/kernels_flash_attention.cpp, the shapes are in core/backend.h). Two families of kernels:
//
// * Tensor-core kernels (`*_tc`, in cuda/flash_attention_tc.cuh, which TPA's fused attention shares), for bf16 mixed precision with head_dim 32, 64 or 128: q, k, v (and
//   in backward the output gradient) come as bfloat16 copies, half the bytes of every tile load; 8
//   warps take 128 rows (queries in forward, keys in backward), copy the tiles to shared memory and multiply with mma.sync m16n8k16
//   (inline PTX), accumulating in float32 registers; the probabilities (and score gradients) go from the accumulator
//   registers straight into the next product's operands, rounded to bf16. Scores, the online softmax
//   and all bookkeeping are float32, in registers.
// * Plain kernels (`*_simt`), for float32 and float64 at any head_dim ≤ 128: one thread per query
//   (or key) row, exact in the tensor's own precision. They serve plain fp32 training and the tests.
//
// Forward: each block owns 128 query rows (64 in the plain kernels) and walks the key tiles up to the
// causal limit, keeping per row the running max m, the running sum l of exp(s − m) and the
// unnormalised output O; a new tile that raises the max rescales l and O by exp(m_old − m_new). At the
// end out = O / l and lse = m + log l, the one number per row that backward needs to recompute
// P = exp(s − lse).
// Backward: D_i = gout_i · out_i per row; then one block per tile of keys walks the query tiles that
// see them. The plain kernels compute gk, gv there and gq in a third kernel over the queries, which
// recomputes the scores but needs no atomics (deterministic); the tensor-core kernel computes all
// three in one pass, adding each query tile's gq into a float32 gq with atomics (the order of those
// additions, and so the last bits of gq, may differ from run to run).
#include "cuda/flash_attention_tc.cuh"

namespace t6 {

namespace kernels {


template <class T>
__device__ T exp_of(T x) {
  return exp(x);
}
template <class T>
__device__ T log_of(T x) {
  return log(x);
}

// Rows handled by one block of the plain kernels (one thread each).
constexpr int kSimtRows = 64;
// Keys per shared-memory tile of the plain kernels: 16 KiB per tile of k (and again for v).
template <class T, int DH>
struct SimtKeys {
  static constexpr int kPerTile = 16384 / (DH * int(sizeof(T)));
  static constexpr int value = kPerTile < 64 ? kPerTile : 64;
};

// Copies `rows` rows of `dh` numbers (row i at src + i·stride) into a [tile_rows][DH] shared tile,
// zero-filling columns ≥ dh and rows ≥ rows so padded lanes add nothing.
template <class T, int DH>
__device__ void load_rows(const T* src, int64_t stride, int rows, int tile_rows, int dh, T* dst) {
  for (int idx = threadIdx.x; idx < tile_rows * DH; idx += blockDim.x) {
    const int r = idx / DH, c = idx % DH;
    dst[idx] = (r < rows && c < dh) ? src[r * stride + c] : T(0);
  }
}

// --- plain kernels -------------------------------------------------------------------------------

// flash_attention_forward, one thread per query row. Grid (B·H, query tiles), the last tile first.
template <class T, int DH>
__global__ void __launch_bounds__(kSimtRows) flash_attention_forward_simt(FlashShape p, const T* q, const T* k,
                                                                            const T* v, T* out, T* lse) {
  constexpr int kKeys = SimtKeys<T, DH>::value;
  __shared__ T k_tile[kKeys * DH], v_tile[kKeys * DH];
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kSimtRows, i = i0 + threadIdx.x;
  const bool active = i < p.q_len;
  const int position = i + p.offset;
  T q_row[DH], acc[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    q_row[d] = active && d < p.head_dim ? q[p.q_row(b, i, h) + d] * T(p.scale) : T(0);  // scale folded into q
    acc[d] = 0;
  }
  T running_max = -INFINITY, sum = 0;
  const int last_key = min(p.kv_len - 1, i0 + kSimtRows - 1 + p.offset);  // the block's last visible key
  for (int j0 = 0; j0 <= last_key; j0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    const int rows = min(kKeys, p.kv_len - j0);
    load_rows<T, DH>(k + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, k_tile);
    load_rows<T, DH>(v + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, v_tile);
    __syncthreads();
    const int visible = active ? min(rows, position - j0 + 1) : 0;  // keys j ≤ position in this tile
    for (int jj = 0; jj < visible; ++jj) {
      T s = 0;
#pragma unroll
      for (int d = 0; d < DH; ++d) s += q_row[d] * k_tile[jj * DH + d];  // s = scale · q·k_j
      if (s > running_max) {  // a new max: rescale what was summed against the old one
        const T c = exp_of(running_max - s);
        sum *= c;
#pragma unroll
        for (int d = 0; d < DH; ++d) acc[d] *= c;
        running_max = s;
      }
      const T e = exp_of(s - running_max);
      sum += e;
#pragma unroll
      for (int d = 0; d < DH; ++d) acc[d] += e * v_tile[jj * DH + d];
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < DH; ++d) {  // unrolled over DH: a register array takes only constant indices
    if (d < p.head_dim) out[p.q_row(b, i, h) + d] = acc[d] / sum;
  }
  lse[p.lse_index(b, h, i)] = running_max + log_of(sum);
}


// gq_i = scale Σ_j P_ij (gout_i·v_j − D_i) k_j, one thread per query row. Grid as in forward.
template <class T, int DH>
__global__ void __launch_bounds__(kSimtRows) flash_attention_backward_dq_simt(FlashShape p, const T* q, const T* k,
                                                                                const T* v, const T* lse,
                                                                                const T* row_dot, const T* gout,
                                                                                T* gq) {
  constexpr int kKeys = SimtKeys<T, DH>::value;
  __shared__ T k_tile[kKeys * DH], v_tile[kKeys * DH];
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kSimtRows, i = i0 + threadIdx.x;
  const bool active = i < p.q_len;
  const int position = i + p.offset;
  T q_row[DH], g_row[DH], dq[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    q_row[d] = active && d < p.head_dim ? q[p.q_row(b, i, h) + d] * T(p.scale) : T(0);
    g_row[d] = active && d < p.head_dim ? gout[p.q_row(b, i, h) + d] : T(0);
    dq[d] = 0;
  }
  const T lse_i = active ? lse[p.lse_index(b, h, i)] : T(0), D_i = active ? row_dot[p.lse_index(b, h, i)] : T(0);
  const int last_key = min(p.kv_len - 1, i0 + kSimtRows - 1 + p.offset);
  for (int j0 = 0; j0 <= last_key; j0 += kKeys) {
    __syncthreads();
    const int rows = min(kKeys, p.kv_len - j0);
    load_rows<T, DH>(k + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, k_tile);
    load_rows<T, DH>(v + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, v_tile);
    __syncthreads();
    const int visible = active ? min(rows, position - j0 + 1) : 0;
    for (int jj = 0; jj < visible; ++jj) {
      T s = 0, gp = 0;
#pragma unroll
      for (int d = 0; d < DH; ++d) {
        s += q_row[d] * k_tile[jj * DH + d];   // s_ij = scale · q_i·k_j
        gp += g_row[d] * v_tile[jj * DH + d];  // gP_ij = gout_i · v_j
      }
      const T gs = exp_of(s - lse_i) * (gp - D_i);  // gs_ij = P_ij (gP_ij − D_i)
#pragma unroll
      for (int d = 0; d < DH; ++d) dq[d] += gs * k_tile[jj * DH + d];
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    if (d < p.head_dim) gq[p.q_row(b, i, h) + d] = dq[d] * T(p.scale);  // ∂s/∂q = scale · k
  }
}

// gk_j = scale Σ_i gs_ij q_i and gv_j = Σ_i P_ij gout_i over the group's query heads, one thread per
// key row; the block's keys sit in shared memory (padded rows: each thread reads its own), the
// queries and output gradients stream through in tiles that every thread reads in step (broadcast).
// Grid (B·Hkv, key tiles of kSimtRows), the first keys (which most queries see) first.
template <class T, int DH>
__global__ void __launch_bounds__(kSimtRows) flash_attention_backward_dkdv_simt(FlashShape p, const T* q, const T* k,
                                                                                  const T* v, const T* lse,
                                                                                  const T* row_dot, const T* gout,
                                                                                  T* gk, T* gv) {
  constexpr int kQueries = 16, kPad = DH + 1;
  extern __shared__ __align__(16) unsigned char simt_shared[];
  T* k_own = reinterpret_cast<T*>(simt_shared);  // [kSimtRows][DH + 1]
  T* v_own = k_own + kSimtRows * kPad;
  T* q_tile = v_own + kSimtRows * kPad;  // [kQueries][DH]
  T* g_tile = q_tile + kQueries * DH;
  T* lse_tile = g_tile + kQueries * DH;  // [kQueries]
  T* dot_tile = lse_tile + kQueries;
  const int b = blockIdx.x / p.kv_heads, hk = blockIdx.x % p.kv_heads;
  const int j0 = blockIdx.y * kSimtRows, j = j0 + threadIdx.x;
  const bool active = j < p.kv_len;
  const int64_t q_stride = int64_t(p.heads) * p.head_dim;
  for (int idx = threadIdx.x; idx < kSimtRows * DH; idx += blockDim.x) {
    const int r = idx / DH, c = idx % DH;
    const bool in = j0 + r < p.kv_len && c < p.head_dim;
    k_own[r * kPad + c] = in ? k[p.kv_row(b, j0 + r, hk) + c] * T(p.scale) : T(0);  // scale folded into k
    v_own[r * kPad + c] = in ? v[p.kv_row(b, j0 + r, hk) + c] : T(0);
  }
  T dk[DH], dv[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) dk[d] = dv[d] = 0;
  const int first_query = max(0, j0 - p.offset);  // the first query whose position reaches key j0
  for (int h = hk * p.group; h < (hk + 1) * p.group; ++h) {
    for (int i0 = first_query; i0 < p.q_len; i0 += kQueries) {
      __syncthreads();  // the previous tile is no longer read (and, the first time, k_own is written)
      const int rows = min(kQueries, p.q_len - i0);
      load_rows<T, DH>(q + p.q_row(b, i0, h), q_stride, rows, kQueries, p.head_dim, q_tile);
      load_rows<T, DH>(gout + p.q_row(b, i0, h), q_stride, rows, kQueries, p.head_dim, g_tile);
      if (threadIdx.x < kQueries) {
        const bool in = i0 + threadIdx.x < p.q_len;
        lse_tile[threadIdx.x] = in ? lse[p.lse_index(b, h, i0 + threadIdx.x)] : T(0);
        dot_tile[threadIdx.x] = in ? row_dot[p.lse_index(b, h, i0 + threadIdx.x)] : T(0);
      }
      __syncthreads();
      if (!active) continue;
      for (int ii = max(0, j - p.offset - i0); ii < rows; ++ii) {  // queries with position ≥ j
        T s = 0, gp = 0;
#pragma unroll
        for (int d = 0; d < DH; ++d) {
          s += k_own[threadIdx.x * kPad + d] * q_tile[ii * DH + d];   // s_ij = scale · q_i·k_j
          gp += v_own[threadIdx.x * kPad + d] * g_tile[ii * DH + d];  // gP_ij = gout_i · v_j
        }
        const T prob = exp_of(s - lse_tile[ii]);    // P_ij, recomputed
        const T gs = prob * (gp - dot_tile[ii]);  // gs_ij = P_ij (gP_ij − D_i)
#pragma unroll
        for (int d = 0; d < DH; ++d) {
          dv[d] += prob * g_tile[ii * DH + d];  // out_i = Σ_j P_ij v_j
          dk[d] += gs * q_tile[ii * DH + d];
        }
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    if (d >= p.head_dim) continue;
    gk[p.kv_row(b, j, hk) + d] = dk[d] * T(p.scale);  // ∂s/∂k = scale · q
    gv[p.kv_row(b, j, hk) + d] = dv[d];
  }
}

}  // namespace kernels

namespace {

using namespace flash_tc;

template <class T, int DH>
constexpr size_t dkdv_simt_bytes() {
  return (2 * kernels::kSimtRows * (DH + 1) + 2 * 16 * DH + 2 * 16) * sizeof(T);
}

bool tensor_cores_fit(const Backend::FlashAttention& a) {
  return (a.head_dim == 32 || a.head_dim == 64 || a.head_dim == 128) && device_has_bf16_tensor_cores();
}

// Mixed precision: bfloat16 q, k, v (and gout) with float32 out, lse and gradients.
void require_mixed(const char* kernel, std::initializer_list<const Tensor*> bf16_operands,
                   std::initializer_list<const Tensor*> float_operands) {
  for (const Tensor* t : bf16_operands) require_dtype(kernel, *t, DType::BF16);
  for (const Tensor* t : float_operands) require_dtype(kernel, *t, DType::F32);
}

kernels::HeadTiles head_tiles(const Tensor& q, const Tensor& k, const Tensor& v) {
  return {device_ptr<const kernels::bf16>(q), device_ptr<const kernels::bf16>(k), device_ptr<const kernels::bf16>(v)};
}

}  // namespace

void CudaBackend::flash_attention_forward(const FlashAttention& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                          Tensor& out, Tensor& lse) {
  const bool mixed = q.dtype() == DType::BF16;
  if (mixed && !tensor_cores_fit(a))  // no tensor-core kernel for this head_dim or GPU: the plain float32 one
    return flash_attention_forward(a, q.to_dtype(DType::F32), k.to_dtype(DType::F32), v.to_dtype(DType::F32), out,
                                   lse);
  const auto timing = timer_.time(mixed ? "flash_attention_forward bf16" : "flash_attention_forward");
  const kernels::FlashShape p = flash_shape(a);
  if (mixed) {
    require_mixed("flash_attention_forward", {&q, &k, &v}, {&out, &lse});
    flash_tc::launch_forward(p, head_tiles(q, k, v), out, lse, stream_);
    return;
  }
  const dim3 grid(static_cast<unsigned>(a.batch * a.heads), tiles(a.q_len, kernels::kTile));
  dispatch_float("flash_attention_forward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    dispatch_head_dim(a.head_dim, [&](auto dh) {
      constexpr int DH = decltype(dh)::value;
      kernels::flash_attention_forward_simt<T, DH><<<grid, kernels::kSimtRows, 0, stream_>>>(
          p, device_ptr<const T>(q), device_ptr<const T>(k), device_ptr<const T>(v), device_ptr<T>(out),
          device_ptr<T>(lse));
    });
  });
  T6_CUDA_CHECK_LAUNCH(flash_attention_forward_simt);
}

void CudaBackend::flash_attention_backward(const FlashAttention& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const Tensor& out, const Tensor& lse, const Tensor& gout, Tensor& gq,
                                           Tensor& gk, Tensor& gv) {
  const bool mixed = q.dtype() == DType::BF16;
  if (mixed && !tensor_cores_fit(a))
    return flash_attention_backward(a, q.to_dtype(DType::F32), k.to_dtype(DType::F32), v.to_dtype(DType::F32), out,
                                    lse, gout.to_dtype(DType::F32), gq, gk, gv);
  const auto timing = timer_.time(mixed ? "flash_attention_backward bf16" : "flash_attention_backward");
  const kernels::FlashShape p = flash_shape(a);
  if (mixed) {
    require_mixed("flash_attention_backward", {&q, &k, &v, &gout}, {&out, &lse, &gq, &gk, &gv});
    flash_tc::launch_backward(p, head_tiles(q, k, v), out, lse, gout, gq, gk, gv, stream_);
    return;
  }
  Tensor row_dot = empty(lse.shape(), lse.dtype(), Device::CUDA);  // D_i = gout_i · out_i
  const unsigned rowdot_grid = grid_for(a.batch * a.q_len * a.heads * 32);
  dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels::flash_attention_backward_rowdot<T, T, T><<<rowdot_grid, kThreads, 0, stream_>>>(
        p, device_ptr<const T>(out), device_ptr<const T>(gout), device_ptr<T>(row_dot));
  });
  T6_CUDA_CHECK_LAUNCH(flash_attention_backward_rowdot);
  const dim3 query_grid(static_cast<unsigned>(a.batch * a.heads), tiles(a.q_len, kernels::kTile));
  const dim3 key_grid(static_cast<unsigned>(a.batch * a.kv_heads), tiles(a.kv_len, kernels::kSimtRows));
  dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    dispatch_head_dim(a.head_dim, [&](auto dh) {
      constexpr int DH = decltype(dh)::value;
      constexpr size_t bytes = dkdv_simt_bytes<T, DH>();
      static const bool raised = (allow_shared_memory(kernels::flash_attention_backward_dkdv_simt<T, DH>, bytes), true);
      (void)raised;
      kernels::flash_attention_backward_dkdv_simt<T, DH><<<key_grid, kernels::kSimtRows, bytes, stream_>>>(
          p, device_ptr<const T>(q), device_ptr<const T>(k), device_ptr<const T>(v), device_ptr<const T>(lse),
          device_ptr<const T>(row_dot), device_ptr<const T>(gout), device_ptr<T>(gk), device_ptr<T>(gv));
      T6_CUDA_CHECK_LAUNCH(flash_attention_backward_dkdv_simt);
      kernels::flash_attention_backward_dq_simt<T, DH><<<query_grid, kernels::kSimtRows, 0, stream_>>>(
          p, device_ptr<const T>(q), device_ptr<const T>(k), device_ptr<const T>(v), device_ptr<const T>(lse),
          device_ptr<const T>(row_dot), device_ptr<const T>(gout), device_ptr<T>(gq));
      T6_CUDA_CHECK_LAUNCH(flash_attention_backward_dq_simt);
    });
  });
}

}  // namespace t6
