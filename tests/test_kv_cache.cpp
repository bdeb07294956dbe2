// The KV cache of generation: its size against the spec's formula for every attention variant, writes
// into per-row slots, and the factor-space FlashTPA decode attention against attention over
// materialized K and V.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "autograd/ops.h"
#include "nn/cached_heads_decode.h"
#include "nn/flash_tpa_decode.h"
#include "nn/kv_cache.h"
#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

namespace {

ModelConfig cache_config(const std::string& attention) {
  ModelConfig c;
  c.vocab_size = 19;
  c.n_layer = 3;
  c.n_embd = 24;
  c.n_head = 6;
  c.head_dim = 8;
  c.q_rank = 4;
  c.rank = 2;
  c.block_size = 32;
  c.attention = attention_kind_names().parse(attention, "attention");
  c.n_kv_head = attention == "gqa" ? 2 : 0;
  return c;
}

// A layer cache of random factors: B rows of M slots, H heads of dimension dh, rank R.
LayerKVCache random_factors(int64_t B, int64_t M, int64_t H, int64_t R, int64_t dh, DType dtype, Generator& gen) {
  LayerKVCache cache;
  cache.a_k = uniform({B, M, H, R}, -1, 1, gen, dtype);
  cache.b_k = uniform({B, M, R, dh}, -1, 1, gen, dtype);
  cache.a_v = uniform({B, M, H, R}, -1, 1, gen, dtype);
  cache.b_v = uniform({B, M, R, dh}, -1, 1, gen, dtype);
  return cache;
}

// The reference FlashTPA is tested against: K and V formed from the factors as the spec writes them,
// then plain attention over the cached heads.
Tensor materialized_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths) {
  const int64_t B = query.b_q.size(0);
  const Tensor q = query.a_q.defined()
                       ? tpa_product(reshape(query.a_q, {B, 1, query.a_q.size(1), query.a_q.size(2)}),
                                     reshape(query.b_q, {B, 1, query.b_q.size(1), query.b_q.size(2)}))
                       : query.b_q;  // (B,1,H,dh) or (B,H,dh)
  // k_t = (1/R)·A_k B_k and v_t for every slot, then head-major: (B,H,M,dh)
  const Tensor k = contiguous(permute(tpa_product(cache.a_k, cache.b_k), {0, 2, 1, 3}));
  const Tensor v = contiguous(permute(tpa_product(cache.a_v, cache.b_v), {0, 2, 1, 3}));
  return cached_heads_decode(reshape(q, {B, k.size(1), k.size(3)}), k, v, lengths);
}

}  // namespace

TEST_CASE("the cache allocates exactly the spec's numbers per token for every variant") {
  // numbers per token per layer, written out: 2R(H + dh) for the factors, 2·kv_heads·dh for heads
  const std::map<std::string, int64_t> expected = {{"tpa", 2 * 2 * (6 + 8)},
                                                    {"tpa_kvonly", 2 * 2 * (6 + 8)},
                                                    {"mha", 2 * 6 * 8},
                                                    {"gqa", 2 * 2 * 8},
                                                    {"mqa", 2 * 8}};
  for (const auto& [variant, numbers] : expected) {
    INFO("attention " << variant);
    const ModelConfig c = cache_config(variant);
    CHECK(c.kv_cache_numbers_per_token_per_layer() == numbers);
    const int64_t B = 3, M = 7, L = c.n_layer;
    KVCache cache(c, B, M);
    CHECK(cache.bytes_allocated() == 4 * L * B * M * numbers);
    CHECK(cache.bytes_per_token() == 4 * L * numbers);
    KVCache doubles(c, B, M, Device::CPU, DType::F64);
    CHECK(doubles.bytes_allocated() == 8 * L * B * M * numbers);
    const LayerKVCache& layer = cache.layer(0);
    if (c.factorized_kv()) {
      CHECK(layer.a_k.shape() == Shape{B, M, 6, 2});
      CHECK(layer.b_k.shape() == Shape{B, M, 2, 8});
      CHECK(layer.a_v.shape() == Shape{B, M, 6, 2});
      CHECK(layer.b_v.shape() == Shape{B, M, 2, 8});
      CHECK(!layer.k.defined());
    } else {
      CHECK(layer.k.shape() == Shape{B, c.kv_heads(), M, 8});
      CHECK(layer.v.shape() == Shape{B, c.kv_heads(), M, 8});
      CHECK(!layer.a_k.defined());
    }
    CHECK(cache.layers() == 3);
    CHECK(cache.lengths() == std::vector<int64_t>{0, 0, 0});
  }
}

TEST_CASE("the comparison table: the paper's small T6 against MHA, GQA and MQA of the same width") {
  const std::vector<KVCacheSize> rows = kv_cache_comparison(ModelConfig{});  // d=768, H=34, dh=64, R=2
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].variant == "this model (tpa)");
  CHECK(rows[0].numbers_per_layer == 2 * 2 * (34 + 64));  // 392
  CHECK(rows[1].variant == "MHA, 12 heads");
  CHECK(rows[1].numbers_per_layer == 2 * 12 * 64);
  CHECK(rows[2].variant == "GQA, 3 kv heads");
  CHECK(rows[2].numbers_per_layer == 2 * 3 * 64);
  CHECK(rows[3].numbers_per_layer == 2 * 64);
}

TEST_CASE("write_cache puts each row's tokens at its own slots; lengths and slots advance per row") {
  const Tensor buffer = zeros({2, 5, 3});
  const Tensor values = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 2, 3});
  write_cache(buffer, values, {1, 3});
  const std::vector<double> got = buffer.to_double_vector();
  const std::vector<double> expected = {0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0,   // row 0: slots 1, 2
                                        0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8, 9, 10, 11, 12};  // row 1: slots 3, 4
  CHECK(got == expected);
  CHECK_THROWS_WITH_AS(write_cache(buffer, values, {4, 0}), doctest::Contains("do not fit a cache of 5 slots"), Error);
  // a head-major buffer (B,Hkv,M,dh) takes its tokens along axis 2
  const Tensor heads = zeros({1, 2, 3, 1});
  write_cache(heads, from_vector({1, 2}, {1, 2, 1, 1}), {2}, /*time_axis=*/2);
  CHECK(heads.to_double_vector() == std::vector<double>{0, 0, 1, 0, 0, 2});

  KVCache cache(cache_config("tpa"), 2, 4);
  cache.set_lengths({1, 3});
  CHECK(cache.next_slots() == std::vector<int64_t>{1, 3});
  cache.advance();
  CHECK(cache.lengths() == std::vector<int64_t>{2, 4});
  CHECK(cache.next_slots() == std::vector<int64_t>{2, 3});  // a full row rewrites its last slot
  cache.advance();
  CHECK(cache.lengths() == std::vector<int64_t>{3, 4});
  CHECK_THROWS_WITH_AS(cache.set_lengths({5, 0}), doctest::Contains("does not fit 4 slots"), Error);
  CHECK(lengths_through({0, 4}) == std::vector<int64_t>{1, 5});
}

TEST_CASE("write_cache_at puts each row's one new token at the slot the device tensor names") {
  const Tensor buffer = zeros({3, 4, 2});
  write_cache_at(buffer, from_vector({1, 2, 3, 4, 5, 6}, {3, 1, 2}), from_ints({3, 0, 3}, {3, 1}));
  CHECK(buffer.to_double_vector() == std::vector<double>{0, 0, 0, 0, 0, 0, 1, 2,    // row 0: slot 3
                                                         3, 4, 0, 0, 0, 0, 0, 0,    // row 1: slot 0
                                                         0, 0, 0, 0, 0, 0, 5, 6});  // row 2: slot 3
  CHECK_THROWS_WITH_AS(write_cache_at(buffer, zeros({3, 2, 2}), from_ints({0, 0, 0}, {3, 1})),
                       doctest::Contains("one token per row"), Error);
  // float32 values into a bfloat16 cache: an error naming the fused step, not a reinterpretation of bits
  const Tensor bf16_buffer = zeros({3, 4, 2}).to_dtype(DType::BF16);
  CHECK_THROWS_WITH_AS(write_cache_at(bf16_buffer, zeros({3, 1, 2}), from_ints({0, 0, 0}, {3, 1})),
                       doctest::Contains("into a cache of bfloat16"), Error);
  // a slot table filled in place, as a captured decode step reads it
  KVCache cache(cache_config("tpa"), 2, 4);
  cache.set_lengths({1, 3});
  const Tensor table = empty({2, 2}, DType::I32);
  const DecodeSlots step = cache.decode_slots(table);
  CHECK(table.to_double_vector() == std::vector<double>{1, 3, 2, 4});
  CHECK(step.positions.to_double_vector() == std::vector<double>{1, 3});
  CHECK_THROWS_WITH_AS(cache.decode_slots(empty({2, 3}, DType::I32)), doctest::Contains("int32 (2, 2) tensor"), Error);
}

TEST_CASE("a decode step's slots: positions and lengths for every layer, from one upload") {
  KVCache cache(cache_config("tpa"), 3, 4);
  cache.set_lengths({0, 2, 4});
  const DecodeSlots step = cache.decode_slots();
  CHECK(step.slots == std::vector<int64_t>{0, 2, 3});  // the full row rewrites its last slot
  CHECK(step.lengths == std::vector<int64_t>{1, 3, 4});
  CHECK(step.positions.shape() == Shape{3, 1});
  CHECK(step.positions.to_vector<int32_t>() == std::vector<int32_t>{0, 2, 3});
  CHECK(step.device_lengths.shape() == Shape{3});
  CHECK(step.device_lengths.to_vector<int32_t>() == std::vector<int32_t>{1, 3, 4});
  CHECK(step.positions.same_storage(step.device_lengths));
}

TEST_CASE("FlashTPA: factor-space decode attention equals attention over materialized K and V") {
  // Rows of different lengths: one token, within one tile, across tiles and chunks (256), and full.
  const int64_t B = 4, M = 600, H = 3, R = 2, RQ = 5, dh = 8;
  const std::vector<int64_t> lengths = {1, 30, 517, 600};
  for (DType dtype : {DType::F64, DType::F32}) {
    INFO(dtype_name(dtype));
    const double tolerance = dtype == DType::F64 ? 1e-12 : 1e-5;
    Generator gen(5);
    const LayerKVCache cache = random_factors(B, M, H, R, dh, dtype, gen);
    SUBCASE("a factorized query (tpa)") {
      const TPAQuery q{uniform({B, H, RQ}, -2, 2, gen, dtype), uniform({B, RQ, dh}, -2, 2, gen, dtype)};
      const Tensor flash = flash_tpa_decode(q, cache, lengths);
      CHECK(flash.shape() == Shape{B, H, dh});
      check_close(flash, materialized_tpa_decode(q, cache, lengths).to_double_vector(), tolerance);
    }
    SUBCASE("a plain query (tpa_kvonly)") {
      const TPAQuery q{Tensor(), uniform({B, H, dh}, -2, 2, gen, dtype)};
      check_close(flash_tpa_decode(q, cache, lengths), materialized_tpa_decode(q, cache, lengths).to_double_vector(),
                  tolerance);
    }
  }
}

TEST_CASE("FlashTPA: one cached token gives back its value, and large logits do not overflow") {
  // With a single cached token the softmax weight is 1: the output is v = (1/R)·A_v B_v exactly.
  Generator gen(6);
  const int64_t H = 2, R = 3, RQ = 2, dh = 4;
  const LayerKVCache cache = random_factors(1, 3, H, R, dh, DType::F64, gen);
  const TPAQuery q{uniform({1, H, RQ}, -1, 1, gen, DType::F64), uniform({1, RQ, dh}, -1, 1, gen, DType::F64)};
  const std::vector<double> av = cache.a_v.to_double_vector(), bv = cache.b_v.to_double_vector();
  std::vector<double> v(H * dh, 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t j = 0; j < dh; ++j)
      for (int64_t u = 0; u < R; ++u) v[h * dh + j] += av[h * R + u] * bv[u * dh + j] / R;
  check_close(flash_tpa_decode(q, cache, {1}), v, 1e-14);
  // logits in the thousands: the online softmax subtracts the running max, so nothing overflows
  const TPAQuery big{scale(q.a_q, 1e5), q.b_q};
  const std::vector<double> out = flash_tpa_decode(big, cache, {3}).to_double_vector();
  for (double x : out) CHECK(std::isfinite(x));
  check_close(flash_tpa_decode(big, cache, {3}), materialized_tpa_decode(big, cache, {3}).to_double_vector(), 1e-10);
}

TEST_CASE("FlashTPA: bfloat16 factors give the float32 result of their widened values") {
  // Rows of different lengths over a cache past one CPU chunk; both query forms.
  const int64_t B = 2, M = 300, H = 3, R = 2, RQ = 5, dh = 6;
  const std::vector<int64_t> lengths = {300, 41};
  Generator gen(8);
  const LayerKVCache wide = random_factors(B, M, H, R, dh, DType::F32, gen);
  LayerKVCache narrow;
  narrow.a_k = wide.a_k.to_dtype(DType::BF16), narrow.b_k = wide.b_k.to_dtype(DType::BF16);
  narrow.a_v = wide.a_v.to_dtype(DType::BF16), narrow.b_v = wide.b_v.to_dtype(DType::BF16);
  auto widened = [](const LayerKVCache& c) {
    return LayerKVCache{c.a_k.to_dtype(DType::F32), c.b_k.to_dtype(DType::F32), c.a_v.to_dtype(DType::F32),
                        c.b_v.to_dtype(DType::F32), Tensor(), Tensor()};
  };
  auto narrow_uniform = [&](const Shape& shape) { return uniform(shape, -2, 2, gen).to_dtype(DType::BF16); };
  const TPAQuery factorized{narrow_uniform({B, H, RQ}), narrow_uniform({B, RQ, dh})};
  const TPAQuery plain{Tensor(), narrow_uniform({B, H, dh})};
  for (const TPAQuery& q : {factorized, plain}) {
    const TPAQuery q32{q.a_q.defined() ? q.a_q.to_dtype(DType::F32) : Tensor(), q.b_q.to_dtype(DType::F32)};
    const Tensor out = flash_tpa_decode(q, narrow, lengths);
    CHECK(out.dtype() == DType::F32);
    CHECK(out.to_double_vector() == flash_tpa_decode(q32, widened(narrow), lengths).to_double_vector());
  }
}

TEST_CASE("decode attention rejects lengths that do not fit the cache") {
  Generator gen(7);
  const LayerKVCache cache = random_factors(2, 4, 2, 1, 4, DType::F32, gen);
  const TPAQuery q{uniform({2, 2, 3}, -1, 1, gen), uniform({2, 3, 4}, -1, 1, gen)};
  CHECK_THROWS_WITH_AS(flash_tpa_decode(q, cache, {1, 5}), doctest::Contains("needs 1 to 4"), Error);
  CHECK_THROWS_WITH_AS(flash_tpa_decode(q, cache, {0, 1}), doctest::Contains("needs 1 to 4"), Error);
  CHECK_THROWS_WITH_AS(flash_tpa_decode(q, cache, {1}), doctest::Contains("1 lengths for 2 rows"), Error);
  const TPAQuery wrong{uniform({2, 2, 3}, -1, 1, gen), uniform({2, 3, 6}, -1, 1, gen)};
  CHECK_THROWS_WITH_AS(flash_tpa_decode(wrong, cache, {1, 1}), doctest::Contains("do not fit a cache of factors"),
                       Error);
  // lengths already in a tensor (what generation passes) must be int32 (B) on the cache's device
  CHECK(flash_tpa_decode(q, cache, from_ints({1, 4}, {2})).to_double_vector() ==
        flash_tpa_decode(q, cache, {1, 4}).to_double_vector());
  CHECK_THROWS_WITH_AS(flash_tpa_decode(q, cache, from_vector({1, 4}, {2})),
                       "flash_tpa_decode: lengths must be int32 (2) on cpu, got float32 [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(flash_tpa_decode(q, cache, from_ints({1, 4, 4}, {3})),
                       doctest::Contains("lengths must be int32 (2)"), Error);
}
