// The CPU backend's threads: its kernels run on OpenMP threads, and OpenBLAS stays single-threaded
// inside them (core/cpu/gemm.cpp splits each product across the OpenMP team itself).
#pragma once
#include <string>

namespace t6 {

// The most threads a count may ask for, from train.threads or an environment variable alike: more
// than the OpenMP runtime can start on an ordinary machine, and a typo (100000) is refused rather
// than left to exhaust the process.
inline constexpr int kMaxCpuThreads = 1024;

// Sets the OpenMP thread count of every CPU kernel: `threads`, or for 0 the environment variable
// T6_NUM_THREADS, else OMP_NUM_THREADS, else every core. Throws on a count outside [0, kMaxCpuThreads] or
// an unreadable variable.
void set_cpu_threads(int threads);
int cpu_threads();  // the count in use, applying the defaults on first call

std::string blas_description();  // which BLAS library and version is linked in, and how it is threaded

}  // namespace t6
