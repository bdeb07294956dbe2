// Micro-benchmarks of the engine core on the CPU: matmul through the tensor layer against a raw
// OpenBLAS call of the same product (the layer's overhead), and softmax / rms_norm throughput.
// usage: build/bench_core [repeats]        (threads: T6_NUM_THREADS / OMP_NUM_THREADS / all cores)
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/ops.h"
#include "core/backend.h"
#include "core/cpu/threads.h"
#include "core/random.h"

using namespace t6;

namespace {

// Median wall time of `repeats` runs after two warm-up runs, in milliseconds.
double median_ms(int repeats, const std::function<void()>& run) {
  run();
  run();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 50;
  set_cpu_threads(0);
  const int threads = cpu_threads();
  std::printf("%s, %d threads, median of %d runs\n\n", blas_description().c_str(), threads, repeats);
  NoGradGuard no_grad;
  Generator gen(1);

  // --- matmul 512×512×512 float32: tensor layer vs raw cblas_sgemm ------------------------------
  const int n = 512;
  const Tensor a = uniform({n, n}, -1, 1, gen), b = uniform({n, n}, -1, 1, gen);
  Tensor c = empty({n, n});
  const double flops = 2.0 * n * n * n;
  const double layer = median_ms(repeats, [&] { c = matmul(a, b); });
  // The raw call gets the same threads, through OpenBLAS's own threading (t6 keeps OpenBLAS
  // single-threaded and splits products across OpenMP threads itself).
  openblas_set_num_threads(threads);
  const double raw = median_ms(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n, 0.0f,
                c.data<float>(), n);
  });
  openblas_set_num_threads(1);
  const double raw_single = median_ms(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n, 0.0f,
                c.data<float>(), n);
  });
  std::printf("matmul 512x512x512 f32   t6 layer %7.3f ms (%5.1f GFLOP/s)   raw OpenBLAS, %d threads %7.3f ms   "
              "raw, 1 thread %7.3f ms   layer overhead vs raw: %+.1f%%\n",
              layer, flops / layer / 1e6, threads, raw, raw_single, 100.0 * (layer / raw - 1.0));

  // --- softmax and rms_norm throughput: bytes read + written per second -------------------------
  const int64_t rows = 4096, cols = 1024;
  const Tensor x = uniform({rows, cols}, -3, 3, gen);
  const double bytes = 2.0 * rows * cols * sizeof(float);  // read x, write y
  const double sm = median_ms(repeats, [&] { (void)softmax(x); });
  const double smc = median_ms(repeats, [&] { (void)softmax(reshape(x, {4, 1024, 1024}), 0.125, true); });
  const double rn = median_ms(repeats, [&] { (void)rms_norm(x, 1.1920928955078125e-07); });
  std::printf("softmax [4096,1024]       %7.3f ms  %6.2f GB/s\n", sm, bytes / sm / 1e6);
  std::printf("softmax causal [4,1024,1024], scale %7.3f ms  %6.2f GB/s\n", smc, bytes / smc / 1e6);
  std::printf("rms_norm [4096,1024]      %7.3f ms  %6.2f GB/s\n", rn, bytes / rn / 1e6);
  return 0;
}
