// quant/kmeans_1d and quant/palettize against coremltools 8.1 (tests/goldens/quant, made by
// tests/reference/make_palettize_goldens.py) and against brute force.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/palettized.h"
#include "golden.h"
#include "quant/kmeans_1d.h"
#include "quant/palettize.h"
#include "test_util.h"

namespace sdpal {
namespace {

using testing::code_of;

// Optimal cost by the O(k n^2) dynamic program, the definition kmeans_1d must meet.
double brute_force_cost(const std::vector<double>& x, const std::vector<double>& w, size_t k) {
  const size_t n = x.size();
  auto cost = [&](size_t a, size_t b) {  // points [a, b]
    double sw = 0, sx = 0;
    for (size_t i = a; i <= b; ++i) sw += w[i], sx += w[i] * x[i];
    const double mu = sx / sw;
    double c = 0;
    for (size_t i = a; i <= b; ++i) c += w[i] * (x[i] - mu) * (x[i] - mu);
    return c;
  };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> d(k + 1, std::vector<double>(n + 1, inf));
  d[0][0] = 0;
  for (size_t c = 1; c <= k; ++c)
    for (size_t e = 1; e <= n; ++e)
      for (size_t s = c - 1; s < e; ++s)
        if (d[c - 1][s] < inf) d[c][e] = std::min(d[c][e], d[c - 1][s] + cost(s, e - 1));
  double best = inf;
  for (size_t c = 1; c <= k; ++c) best = std::min(best, d[c][n]);
  return best;
}

TEST(KMeans1D, OptimalOnRandomInputs) {
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> count(1, 20);
  for (int trial = 0; trial < 40; ++trial) {
    const size_t n = 5 + size_t(trial) * 2;
    std::vector<double> x(n), w(n);
    for (auto& v : x) v = std::round(normal(rng) * 64) / 64;  // some repeated values
    std::sort(x.begin(), x.end());
    for (auto& v : w) v = count(rng);
    for (size_t k : {size_t(1), size_t(2), size_t(3), size_t(5), size_t(8)}) {
      const KMeans1DResult r = kmeans_1d(x.data(), w.data(), n, k);
      ASSERT_EQ(r.centroids.size(), std::min(k, n));
      ASSERT_EQ(r.labels.size(), n);
      for (size_t i = 1; i < n; ++i) ASSERT_LE(r.labels[i - 1], r.labels[i]);
      const double got = kmeans_1d_cost(x.data(), w.data(), n, r);
      const double want = brute_force_cost(x, w, std::min(k, n));
      EXPECT_NEAR(got, want, 1e-9 * (1 + want)) << "trial " << trial << " k " << k;
    }
  }
}

TEST(KMeans1D, FewerPointsThanClusters) {
  const double x[] = {-1.0, 0.25, 3.0};
  const double w[] = {2, 1, 5};
  const KMeans1DResult r = kmeans_1d(x, w, 3, 64);
  ASSERT_EQ(r.centroids.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.labels[i], uint32_t(i));
    EXPECT_EQ(r.centroids[i], x[i]);
  }
  const KMeans1DResult one = kmeans_1d(x, w, 3, 1);
  EXPECT_DOUBLE_EQ(one.centroids[0], (-2.0 + 0.25 + 15.0) / 8.0);
}

TEST(KMeans1D, RejectsBadInput) {
  const double x[] = {1.0, 0.0};
  const double nan[] = {0.0, std::nan("")};
  const double w[] = {1.0, -1.0};
  const double ok[] = {0.0, 1.0};
  EXPECT_EQ(code_of([&] { kmeans_1d(x, nullptr, 2, 2); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { kmeans_1d(nan, nullptr, 2, 2); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { kmeans_1d(ok, w, 2, 2); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { kmeans_1d(ok, nullptr, 0, 2); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { kmeans_1d(ok, nullptr, 2, 0); }), ErrorCode::kInvalidArgument);
}

TEST(Palettize, F64ToF16RoundsOnce) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-70000.0, 70000.0);
  for (int i = 0; i < 200000; ++i) {
    double d = u(rng) * std::pow(2.0, -double(rng() % 40));
    if (i % 7 == 0) {  // exact halfway points between two halves, and one ulp of double around them
      const uint16_t h = uint16_t(rng() % 0x7bff);
      const double a = f16_to_f32(h), b = f16_to_f32(uint16_t(h + 1));
      d = (a + b) / 2;
      if (i % 3 == 1) d = std::nextafter(d, 1e9);
      if (i % 3 == 2) d = std::nextafter(d, -1e9);
    }
    const uint16_t got = f64_to_f16(d);
    // Reference: the nearest half (ties to even), by comparing distances in double.
    const float f = f16_to_f32(got);
    if (std::isinf(f)) {
      EXPECT_GE(std::fabs(d), 65520.0);
      continue;
    }
    const double err = std::fabs(double(f) - d);
    for (int step : {-1, 1}) {
      const uint16_t nb = uint16_t(got + step);
      if ((nb & 0x7c00u) == 0x7c00u || (got & 0x7fffu) == 0 ) continue;
      const double e2 = std::fabs(double(f16_to_f32(nb)) - d);
      ASSERT_TRUE(err < e2 || (err == e2 && (got & 1u) == 0)) << d << " -> " << f;
    }
  }
}

TEST(Palettize, PackMatchesUnpack) {
  std::mt19937 rng(5);
  for (int nbits : {1, 2, 3, 4, 6, 8}) {
    for (int64_t count : {1, 7, 8, 9, 31, 1000}) {
      std::vector<uint8_t> v(static_cast<size_t>(count));
      for (auto& x : v) x = uint8_t(rng() % (1u << nbits));
      const std::vector<uint8_t> packed = pack_indices(v.data(), count, nbits);
      ASSERT_EQ(packed.size(), size_t((count * nbits + 7) / 8));
      std::vector<uint8_t> back(v.size());
      unpack_indices(packed.data(), packed.size(), nbits, 0, count, back.data());
      EXPECT_EQ(back, v) << nbits << " bits, " << count;
    }
  }
}

TensorView f16_view(const std::string& name, const Shape& shape, const std::vector<uint16_t>& data) {
  TensorView v;
  v.name = name;
  v.dtype = DType::F16;
  v.shape = shape;
  v.data = reinterpret_cast<const uint8_t*>(data.data());
  v.nbytes = data.size() * 2;
  return v;
}

// Every case of the coremltools goldens: indices identical, tables identical (both are the
// float64 centroids rounded once to float16), and decoding through PalettizedView works.
TEST(Palettize, MatchesCoremltools) {
  const testing::Golden g("tests/goldens/quant/palettize_cases.safetensors");
  std::ifstream in(testing::repo_path("tests/goldens/quant/palettize_cases.json"));
  const nlohmann::json cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 10u);
  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const TensorView& in_view = g.view(c["input"].get<std::string>());
    TensorView w = in_view;
    w.name = name;
    const int nbits = c["nbits"].get<int>();
    const int64_t group = c["group_size"].get<int64_t>();
    const PalettizedTensor p = palettize(w, PalettizeOptions{nbits, group});
    const std::vector<uint8_t> want_packed = g.u8(name + ".packed");
    ASSERT_EQ(p.indices.size(), want_packed.size());
    int64_t index_mismatch = 0;
    for (size_t i = 0; i < want_packed.size(); ++i) index_mismatch += p.indices[i] != want_packed[i];
    EXPECT_EQ(index_mismatch, 0) << "packed index bytes differ";
    const TensorView& lut = g.view(name + ".lut");
    ASSERT_EQ(size_t(lut.numel()), p.lut.size());
    for (size_t i = 0; i < p.lut.size(); ++i) {
      uint16_t want;
      std::memcpy(&want, lut.data + 2 * i, 2);
      EXPECT_EQ(p.lut[i], want) << "table entry " << i << ": " << f16_to_f32(p.lut[i]) << " vs " << f16_to_f32(want);
    }
    // Table shape as PalettizedView expects it, and the dense values decode to table entries.
    const int64_t groups = group ? w.shape[0] / group : 1;
    if (group) {
      EXPECT_EQ(p.lut_shape.size(), w.shape.size() + 2);
      EXPECT_EQ(p.lut_shape[0], groups);
    } else {
      EXPECT_EQ(p.lut_shape, Shape{int64_t(1) << nbits});
    }
    std::vector<float> dec(size_t(w.numel()));
    decode_palettized(p.view(), 0, w.numel(), dec.data());
    const Tensor ref = to_f32(w);
    const double snr = snr_db(ref.f32(), dec.data(), w.numel());
    EXPECT_GT(snr, nbits >= 6 ? 25.0 : 10.0);
  }
}

TEST(Palettize, GroupsAndErrors) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 0.1f);
  const Shape shape{8, 4, 3, 3};
  std::vector<uint16_t> data(size_t(shape_numel(shape)));
  for (size_t i = 0; i < data.size(); ++i) data[i] = f32_to_f16(normal(rng) + (i < data.size() / 2 ? 0.f : 5.f));
  const TensorView v = f16_view("conv.weight", shape, data);
  // Two groups: each table sits on its own half of the values.
  const PalettizedTensor p = palettize(v, PalettizeOptions{4, 4});
  EXPECT_EQ(p.lut_shape, (Shape{2, 1, 1, 1, 16, 1}));
  for (int i = 0; i < 16; ++i) {
    EXPECT_LT(f16_to_f32(p.lut[size_t(i)]), 2.f);
    EXPECT_GT(f16_to_f32(p.lut[size_t(16 + i)]), 2.f);
  }
  std::vector<float> dec(data.size());
  decode_palettized(p.view(), 0, int64_t(data.size()), dec.data());
  const Tensor ref = to_f32(v);
  EXPECT_GT(snr_db(ref.f32(), dec.data(), int64_t(data.size())), 30.0);

  std::string msg;
  EXPECT_EQ(code_of([&] { palettize(v, PalettizeOptions{4, 3}); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("conv.weight"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { palettize(v, PalettizeOptions{5, 0}); }), ErrorCode::kInvalidArgument);
  std::vector<uint16_t> bad = data;
  bad[7] = 0x7c00;  // inf
  EXPECT_EQ(code_of([&] { palettize(f16_view("x.weight", shape, bad), PalettizeOptions{4, 0}); }, &msg),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("element 7"), std::string::npos) << msg;
}

TEST(Palettize, Eligibility) {
  std::vector<uint16_t> d(64 * 64);
  EXPECT_TRUE(palettize_eligible(f16_view("a.to_q.weight", {64, 64}, d)));
  EXPECT_FALSE(palettize_eligible(f16_view("a.to_q.weight", {32, 64}, d)));  // 2048 elements: not above
  EXPECT_FALSE(palettize_eligible(f16_view("text_model.embeddings.token_embedding.weight", {64, 64}, d)));
  EXPECT_FALSE(palettize_eligible(f16_view("text_model.embeddings.position_embedding.weight", {64, 64}, d)));
  EXPECT_FALSE(palettize_eligible(f16_view("concept_embeds", {64, 64}, d)));
  EXPECT_FALSE(palettize_eligible(f16_view("norm.weight", {4096}, d)));
  EXPECT_TRUE(palettize_eligible(f16_view("time_embedding.linear_1.weight", {64, 64}, d)));
}

// The size of SD v1.4's largest convs (1280 x 1280 x 3 x 3, fp16): run with
//   test_kmeans --gtest_also_run_disabled_tests --gtest_filter='*Timing*'
TEST(Palettize, DISABLED_Timing14M) {
  const Shape shape{1280, 1280, 3, 3};
  std::vector<uint16_t> data(size_t(shape_numel(shape)));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 0.02f);
  for (auto& h : data) h = f32_to_f16(normal(rng));
  const TensorView v = f16_view("unet.big.weight", shape, data);
  std::vector<uint8_t> seen(65536);
  for (uint16_t h : data) seen[h == 0x8000 ? 0 : h] = 1;
  std::printf("%zu distinct float16 values\n", size_t(std::count(seen.begin(), seen.end(), 1)));
  for (int nbits : {4, 6, 8}) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    const PalettizedTensor p = palettize(v, PalettizeOptions{nbits, 0});
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<float> dec(data.size());
    decode_palettized(p.view(), 0, int64_t(data.size()), dec.data());
    const Tensor ref = to_f32(v);
    std::printf("14.7M elements, %d bits: %.2f s (%.2f s CPU), SNR %.2f dB\n", nbits, s, cpu,
                snr_db(ref.f32(), dec.data(), int64_t(data.size())));
  }
  // Worst case for the k-means: every finite float16 value occurs.
  size_t j = 0;
  for (auto& h : data) {
    do j = (j + 1) % 65536; while ((j & 0x7c00u) == 0x7c00u);
    h = uint16_t(j);
  }
  const TensorView all = f16_view("unet.all.weight", shape, data);
  for (int nbits : {4, 6, 8}) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    const PalettizedTensor p = palettize(all, PalettizeOptions{nbits, 0});
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("14.7M elements, all 63487 finite float16 values, %d bits: %.2f s (%.2f s CPU)\n", nbits, s, cpu);
  }
}

}  // namespace
}  // namespace sdpal
