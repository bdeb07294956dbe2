// Tensor basics: creation, views over shared storage, contiguity, dtype/device moves, printing, RNG.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "core/backend.h"
#include "core/cpu/threads.h"
#include "core/random.h"

using namespace t6;

TEST_CASE("creation functions fill the right values") {
  CHECK(zeros({2, 3}).to_double_vector() == std::vector<double>(6, 0.0));
  CHECK(ones({4}, DType::F64).to_double_vector() == std::vector<double>(4, 1.0));
  CHECK(full({2}, 2.5).to_double_vector() == std::vector<double>{2.5, 2.5});
  CHECK(arange(4, DType::I32).to_vector<int32_t>() == std::vector<int32_t>{0, 1, 2, 3});
  Tensor t = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.strides() == Shape{3, 1});
  CHECK(t.dtype() == DType::F32);
  CHECK(from_vector({7}, {}).ndim() == 0);
  CHECK(from_vector({7}, {}).item() == 7.0);
  CHECK_THROWS_WITH_AS(from_vector({1, 2, 3}, {2, 2}), "from_vector: 3 values do not fill shape [2, 2]", Error);
  CHECK_THROWS_AS(empty({-1}), Error);
}

TEST_CASE("views share storage and never copy") {
  Tensor t = from_vector({0, 1, 2, 3, 4, 5}, {2, 3}, DType::F64);
  Tensor v = t.view({3, 2});
  CHECK(v.same_storage(t));
  CHECK(v.view({-1}).shape() == Shape{6});
  Tensor tr = transpose(t, 0, 1);  // [3, 2], strides [1, 3]
  CHECK(tr.same_storage(t));
  CHECK(tr.strides() == Shape{1, 3});
  CHECK_FALSE(tr.is_contiguous());
  CHECK(tr.to_double_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  Tensor col = slice(t, 1, 1, 3);  // [[1,2],[4,5]]
  CHECK(col.same_storage(t));
  CHECK(col.to_double_vector() == std::vector<double>{1, 2, 4, 5});
  // writing through a view is visible in the base tensor, and bumps the shared version
  const uint64_t before = t.version();
  col.fill_(9);
  CHECK(t.to_double_vector() == std::vector<double>{0, 9, 9, 3, 9, 9});
  CHECK(t.version() == before + 1);
  CHECK_THROWS_WITH_AS(tr.view({6}), "view: tensor of shape [3, 2] is not contiguous; use reshape()", Error);
  CHECK_THROWS_AS(t.view({4}), Error);
  CHECK_THROWS_AS(t.as_strided({7}, {1}, 0), Error);  // reaches past the storage
}

TEST_CASE("contiguous packs strided views in logical order") {
  Tensor t = from_vector({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {2, 3, 2}, DType::F64);
  Tensor p = permute(t, {2, 0, 1});  // [2, 2, 3]
  Tensor c = contiguous(p);
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.same_storage(t));
  CHECK(c.to_double_vector() == std::vector<double>{0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11});
  CHECK(contiguous(t).same_storage(t));  // already contiguous: no copy
  // reshape of a non-contiguous tensor copies; of a contiguous one it views
  CHECK_FALSE(reshape(p, {12}).same_storage(t));
  CHECK(reshape(t, {12}).same_storage(t));
}

TEST_CASE("dtype conversion and printing") {
  Tensor t = from_vector({1.5, -2.25, 3}, {3}, DType::F64);
  CHECK(t.to_dtype(DType::F32).to_double_vector() == std::vector<double>{1.5, -2.25, 3});
  CHECK(t.to_dtype(DType::I32).to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3});
  CHECK(t.to_dtype(DType::BF16).to_double_vector() == std::vector<double>{1.5, -2.25, 3});
  CHECK(t.str() == "tensor([1.5, -2.25, 3], shape=[3], dtype=float64, device=cpu)");
  Tensor m = from_vector({1, 2, 3, 4}, {2, 2});
  CHECK(m.str() == "tensor([[1, 2],\n        [3, 4]], shape=[2, 2], dtype=float32, device=cpu)");
  CHECK(arange(100).str(5).find("...") != std::string::npos);
}

TEST_CASE("Generator gives the same numbers on every machine") {
  // Reference values computed independently (xoshiro256** seeded through splitmix64 with seed 42).
  Generator gen(42);
  CHECK(gen.next_u64() == 0x15780b2e0c2ec716ull);
  CHECK(gen.next_u64() == 0x6104d9866d113a7eull);
  CHECK(gen.next_u64() == 0xae17533239e499a1ull);
  CHECK(gen.uniform() == 0.9246929453253876);
  Generator a(7), b(7);
  CHECK(uniform({5}, -1, 1, a).to_double_vector() == uniform({5}, -1, 1, b).to_double_vector());
  Generator c(7);
  c.set_state(a.state());
  CHECK(c.next_u64() == a.next_u64());
  // normal draws have roughly the right moments
  Generator n(3);
  const std::vector<double> v = normal({20000}, 2.0, 0.5, n, DType::F64).to_double_vector();
  double mean = 0, var = 0;
  for (double x : v) mean += x / v.size();
  for (double x : v) var += (x - mean) * (x - mean) / v.size();
  CHECK(mean == doctest::Approx(2.0).epsilon(0.01));
  CHECK(std::sqrt(var) == doctest::Approx(0.5).epsilon(0.02));
  for (int i = 0; i < 1000; ++i) CHECK(n.below(3) < 3);
}

TEST_CASE("in-place writes") {
  Tensor a = from_vector({1, 2, 3}, {3}, DType::F64);
  a.add_(from_vector({1, 1, 1}, {3}, DType::F64), 2.0);
  CHECK(a.to_double_vector() == std::vector<double>{3, 4, 5});
  a.scale_(0.5);
  CHECK(a.to_double_vector() == std::vector<double>{1.5, 2, 2.5});
  a.copy_(from_vector({7, 8, 9}, {3}, DType::F32));
  CHECK(a.to_double_vector() == std::vector<double>{7, 8, 9});
  CHECK_THROWS_AS(a.copy_(zeros({2})), Error);
}

TEST_CASE("the CPU backend reports OpenBLAS and CUDA errors are clear") {
  CHECK(blas_description().find("OpenBLAS") != std::string::npos);
  if (!device_available(Device::CUDA)) CHECK_THROWS_AS(backend(Device::CUDA), Error);
}
