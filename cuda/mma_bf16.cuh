// Warp-level bf16 tensor-core primitives (mma.sync, ldmatrix, cp.async) shared by the tensor-core
// kernels: flash attention (cuda/kernels_flash_attention.cu) and FlashTPA decode
// (cuda/kernels_tpa_decode_tc.cu).
//
// Every product is one warp-wide `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32` (PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type"): D (16×8, fp32) += A (16×16, bf16) ·
// B (16×8, bf16). With lane = threadIdx.x % 32, g = lane >> 2 (the PTX "groupID") and t = lane % 4
// ("threadID_in_group"), each lane holds
//   A: a0 = (row g,   cols 2t, 2t+1)    a1 = (row g+8, cols 2t, 2t+1)
//      a2 = (row g,   cols 2t+8, 2t+9)  a3 = (row g+8, cols 2t+8, 2t+9)   (one .b32 register of 2 bf16 each)
//   B: b0 = (rows 2t, 2t+1, col g)      b1 = (rows 2t+8, 2t+9, col g)      (rows = the k dimension)
//   C/D: c0, c1 = (row g, cols 2t, 2t+1)   c2, c3 = (row g+8, cols 2t, 2t+1)   (one fp32 each)
// and a .b32 register of two bf16 keeps the lower column (or k) index in its lower 16 bits.
//
// Fragments come out of shared memory with `ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16` (PTX
// ISA "Warp-level matrix load instruction: ldmatrix"): lanes 8m…8m+7 give the addresses of the 8 rows
// (16 bytes each, 16-byte aligned) of 8×8 matrix m, and register m of lane l receives (row l/4, cols
// 2(l%4), 2(l%4)+1) of matrix m, or with .trans (rows 2(l%4), 2(l%4)+1, col l/4).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace t6::kernels {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Two floats as one .b32 of bf16: `lo` in the lower 16 bits (the lower column of a fragment pair).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo is the low half
  return *reinterpret_cast<const uint32_t*>(&v);
}

// d += A·B on the tensor cores (layouts above).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8×8 bf16 matrices from shared memory, one per register: lane l gives the address of row l % 8
// of matrix l / 8, and receives (row l / 4, columns 2·(l % 4), +1) of each; with kTranspose, of each
// matrix's transpose (ldmatrix .trans).
template <bool kTranspose>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* at) {
  if constexpr (kTranspose) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(at))
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(at))
                 : "memory");
  }
}

// The A fragment of the 16×16 block at (row0, col0) of a row-major tile. Matrix m = lane/8 must be
// a_m: m = 0 rows row0…+7, cols col0…+7; m = 1 rows row0+8…+15, same cols; m = 2 rows row0…+7, cols
// col0+8…+15; m = 3 rows row0+8…, cols col0+8…. So lane l points at row row0 + l%16, col col0 + 8·(l/16).
// Register m then holds (row g [+8], cols 2t, 2t+1 [+8]), exactly a_m.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int ld, int row0, int col0) {
  const int lane = threadIdx.x % 32;
  ldmatrix_x4<false>(a, tile + (row0 + (lane & 15)) * ld + col0 + (lane >> 4) * 8);
}

// The A fragment of the 16×16 block at (row0, col0) of A where the tile stores Aᵀ row by row: A(r, c)
// at tile[c·ld + r] (e.g. gS from a tile of gSᵀ). Matrix m = a_m covers A rows row0 + 8·(m&1) …+7 and
// cols col0 + 8·(m>>1) …+7, i.e. stored rows col0 + 8·(m>>1) …, stored cols row0 + 8·(m&1) …; with
// .trans lane l receives (stored rows 2t, 2t+1 = A cols, stored col g = A row), exactly a_m.
// Lane l (matrix m = l/8) points at stored row col0 + l%8 + 8·(m>>1), col row0 + 8·(m&1).
__device__ __forceinline__ void load_a_transposed(uint32_t (&a)[4], const bf16* tile, int ld, int row0, int col0) {
  const int lane = threadIdx.x % 32, m = lane >> 3;
  ldmatrix_x4<true>(a, tile + (col0 + (lane & 7) + (m >> 1) * 8) * ld + row0 + (m & 1) * 8);
}

// B fragments of two 8-column blocks (n0…n0+7 and n0+8…n0+15), k = k0…k0+15, where the tile stores
// Bᵀ row by row: B(k, n) at tile[n·ld + k] (e.g. B = Kᵀ from the k tile, for S = Q Kᵀ). Without
// .trans lane l receives (stored row l/4 = n offset g, stored cols 2t, 2t+1 = k offsets), i.e. b0/b1
// when the matrix starts at k0 / k0+8. Matrices: 0 = (n0, k0) → b[0] = b0 of block n0; 1 = (n0, k0+8)
// → b[1] = b1 of block n0; 2 = (n0+8, k0) → b[2] = b0 of block n0+8; 3 = (n0+8, k0+8) → b[3] = b1.
// Lane l (matrix m = l/8) points at stored row n0 + l%8 + 8·(m/2), col k0 + 8·(m%2).
__device__ __forceinline__ void load_b_transposed_tile(uint32_t (&b)[4], const bf16* tile, int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32, m = lane >> 3;
  ldmatrix_x4<false>(b, tile + (n0 + (lane & 7) + (m >> 1) * 8) * ld + k0 + (m & 1) * 8);
}

// B fragments as above, but the tile stores B itself row by row: B(k, n) at tile[k·ld + n] (e.g. V in
// O = P V). With .trans lane l receives (stored rows 2t, 2t+1 = k offsets, stored col g = n offset),
// i.e. b0/b1 when the matrix starts at row k0 / k0+8. Matrices: 0 = (k0, n0) → b0 of block n0;
// 1 = (k0+8, n0) → b1 of block n0; 2 = (k0, n0+8) → b0 of block n0+8; 3 = (k0+8, n0+8) → b1.
// Lane l (matrix m = l/8) points at stored row k0 + l%8 + 8·(m%2), col n0 + 8·(m/2).
__device__ __forceinline__ void load_b_tile(uint32_t (&b)[4], const bf16* tile, int ld, int k0, int n0) {
  const int lane = threadIdx.x % 32, m = lane >> 3;
  ldmatrix_x4<true>(b, tile + (k0 + (lane & 7) + (m & 1) * 8) * ld + n0 + (m >> 1) * 8);
}

// 16 bytes from global to shared memory without passing through registers (cp.async, PTX ISA "Data
// Movement and Conversion Instructions: cp.async"); with `valid` false the 16 bytes are zero-filled and
// nothing is read. Both addresses must be 16-byte aligned. A group of copies is closed by
// cp_async_commit and waited for by cp_async_wait<N> (at most N later groups still in flight).
__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared_dst)), "l"(global_src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace t6::kernels
