// Flash attention (AVX-512 and portable paths) against the naive full-score-matrix reference.
// Tolerance: max abs error <= 1e-5 x the output's max abs value.
#include <gtest/gtest.h>

#include <cmath>

#include "core/cpu_features.h"
#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/reference/attention.h"

namespace sdpal {
namespace {

using cpu::AttentionShape;
using testing::random_vec;
using testing::rel_err;

constexpr double kTol = 1e-5;

enum class Path { kDispatch, kAvx512, kPortable };

void run_path(Path path, const AttentionShape& s, const float* q, const float* k, const float* v, float* out) {
  if (path == Path::kDispatch) return cpu::attention(s, q, k, v, out);
  AttentionShape r = cpu::attention_detail::resolve(s);
  if (path == Path::kAvx512)
    cpu::attention_detail::attention_avx512(r, q, k, v, out);
  else
    cpu::attention_detail::attention_portable(r, q, k, v, out);
}

struct Case {
  int64_t batch, heads, sq, sk, d;
  bool causal;
  float score_scale = 1.f;  // multiplies 1/sqrt(d): large values make the softmax peaked
};

std::string case_name(const ::testing::TestParamInfo<std::tuple<Case, Path>>& info) {
  const Case& c = std::get<0>(info.param);
  static const char* paths[] = {"dispatch", "avx512", "portable"};
  return "b" + std::to_string(c.batch) + "h" + std::to_string(c.heads) + "q" + std::to_string(c.sq) + "k" +
         std::to_string(c.sk) + "d" + std::to_string(c.d) + (c.causal ? "causal" : "") +
         (c.score_scale != 1.f ? "peaked" : "") + "_" + paths[int(std::get<1>(info.param))];
}

class AttentionVsReference : public ::testing::TestWithParam<std::tuple<Case, Path>> {};

TEST_P(AttentionVsReference, PackedLayout) {
  const auto [c, path] = GetParam();
  if (path == Path::kAvx512 && !cpu_features().avx512_core()) GTEST_SKIP() << "no AVX-512 on this CPU";
  AttentionShape s;
  s.batch = c.batch, s.heads = c.heads, s.q_len = c.sq, s.kv_len = c.sk, s.head_dim = c.d;
  s.scale = c.score_scale / std::sqrt(float(c.d));
  s.causal = c.causal;
  const int64_t row = c.heads * c.d;
  auto q = random_vec(size_t(c.batch * c.sq * row), 21);
  auto k = random_vec(size_t(c.batch * c.sk * row), 22);
  auto v = random_vec(size_t(c.batch * c.sk * row), 23, -2.f, 3.f);
  std::vector<float> out(q.size(), NAN), expect(q.size());
  run_path(path, s, q.data(), k.data(), v.data(), out.data());
  ref::attention(s, q.data(), k.data(), v.data(), expect.data());
  EXPECT_LE(rel_err(out, expect), kTol);
}

const Case kCases[] = {
    {1, 1, 1, 1, 8, false},       {2, 3, 5, 77, 8, false},     {1, 2, 33, 17, 16, false},
    {2, 2, 49, 129, 32, false},   {2, 8, 64, 64, 40, false},   {1, 2, 100, 77, 40, false},
    {2, 2, 48, 128, 40, false},   {1, 1, 97, 300, 40, false},  {1, 4, 70, 77, 64, false},
    {1, 12, 77, 77, 64, true},    {1, 2, 130, 130, 64, true},  {1, 2, 20, 50, 64, true},
    {1, 2, 50, 20, 40, true},     {1, 2, 60, 90, 80, false},   {1, 2, 53, 77, 160, false},
    {1, 1, 50, 70, 512, false},   {1, 1, 40, 40, 512, true},   {1, 3, 25, 31, 24, false},
    {2, 2, 64, 200, 40, false, 12.f},  // peaked softmax: exercises the online rescaling
    {1, 2, 77, 77, 64, true, 12.f},
};

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionVsReference,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(Path::kAvx512, Path::kPortable)),
                         case_name);

// q, k and v interleaved in one [B, S, 3 * heads * D] projection, output into a wider buffer.
TEST(Attention, StridedFusedQkvLayout) {
  for (Path path : {Path::kDispatch, Path::kPortable}) {
    const int64_t b = 2, heads = 3, sq = 37, d = 40, row = heads * d;
    auto qkv = random_vec(size_t(b * sq * 3 * row), 31);
    AttentionShape s;
    s.batch = b, s.heads = heads, s.q_len = sq, s.kv_len = sq, s.head_dim = d;
    s.scale = 1.f / std::sqrt(float(d));
    s.q_stride = s.k_stride = s.v_stride = 3 * row;
    s.o_stride = row + 7;
    s.o_batch_stride = sq * s.o_stride + 5;
    std::vector<float> out(size_t(b * s.o_batch_stride), -123.f), expect(out.size(), -123.f);
    run_path(path, s, qkv.data(), qkv.data() + row, qkv.data() + 2 * row, out.data());
    ref::attention(s, qkv.data(), qkv.data() + row, qkv.data() + 2 * row, expect.data());
    EXPECT_LE(rel_err(out, expect), kTol);
    // Gaps between rows are untouched.
    EXPECT_EQ(out[size_t(row)], -123.f);
    EXPECT_EQ(out[size_t(s.o_batch_stride - 1)], -123.f);
  }
}

TEST(Attention, UniformKeysAverageValues) {
  // Identical keys: every query attends uniformly, so the output is the mean of v (exact math check
  // independent of the reference implementation).
  const int64_t sk = 77, d = 40;
  AttentionShape s;
  s.q_len = 5, s.kv_len = sk, s.head_dim = d, s.scale = 0.3f;
  auto q = random_vec(size_t(5 * d), 41);
  std::vector<float> k(size_t(sk * d), 0.5f);
  auto v = random_vec(size_t(sk * d), 42);
  std::vector<float> out(size_t(5 * d));
  cpu::attention(s, q.data(), k.data(), v.data(), out.data());
  for (int64_t e = 0; e < d; ++e) {
    double mean = 0;
    for (int64_t j = 0; j < sk; ++j) mean += v[size_t(j * d + e)];
    mean /= double(sk);
    for (int64_t i = 0; i < 5; ++i) EXPECT_NEAR(out[size_t(i * d + e)], mean, 1e-6);
  }
}

TEST(Attention, RejectsInvalidShapes) {
  float x = 0;
  AttentionShape s;
  s.q_len = 1, s.kv_len = 0, s.head_dim = 8;
  EXPECT_THROW(cpu::attention(s, &x, &x, &x, &x), Error);
  s.kv_len = 1, s.head_dim = 0;
  EXPECT_THROW(cpu::attention(s, &x, &x, &x, &x), Error);
  s.head_dim = 8, s.heads = 2, s.q_stride = 8;  // smaller than heads * head_dim
  EXPECT_THROW(cpu::attention(s, &x, &x, &x, &x), Error);
}

}  // namespace
}  // namespace sdpal
