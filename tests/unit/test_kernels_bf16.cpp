// Precision::BF16 in cpu::Linear, cpu::Conv2d and cpu::attention, and that Precision::F32 is the
// unchanged fp32 path. The bf16 tests are skipped on CPUs without AVX512-BF16 / AMX-BF16.
// Tolerances (max abs error / max abs expected value, testing::rel_err):
//   - bf16 kernel vs a double-precision reference fed the same bf16-rounded inputs and weights:
//     <= 2e-5 (only the fp32 accumulation order differs), which pins down where rounding happens;
//   - bf16 kernel vs the fp32 reference: <= 1e-2 (bf16 keeps 8 significant bits: each product is
//     off by <= 2^-8 relative; for random data the error grows like sqrt(K) as the output does, so
//     the ratio is ~2e-3 for K up to 2560), and > 1e-6, i.e. the bf16 path really ran.
//   - attention in bf16 (q, k, v and the probabilities rounded) vs the fp32 reference: <= 1e-2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/precision.h"
#include "kernel_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/linear.h"
#include "kernels/reference/attention.h"
#include "kernels/reference/gemm.h"

namespace sdpal {
namespace {

using testing::random_vec;
using testing::rel_err;
using testing::view;

constexpr double kRoundedTol = 2e-5;
constexpr double kBf16Tol = 1e-2;
constexpr double kMinDiff = 1e-6;

std::vector<float> bf16_rounded(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return r;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

#define SKIP_WITHOUT_BF16() \
  if (!cpu_has_bf16()) GTEST_SKIP() << "no AVX512-BF16 / AMX-BF16 on this CPU"

TEST(Precision, NamesParsingAndDefault) {
  EXPECT_STREQ(precision_name(Precision::F32), "f32");
  EXPECT_STREQ(precision_name(Precision::BF16), "bf16");
  EXPECT_EQ(parse_precision("f32"), Precision::F32);
  EXPECT_EQ(parse_precision("fp32"), Precision::F32);
  EXPECT_EQ(parse_precision("bf16"), Precision::BF16);
  EXPECT_EQ(parse_precision("auto"), default_precision());
  EXPECT_THROW(parse_precision("fp16"), Error);
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(default_precision() == Precision::BF16, f.avx512_core() && (f.avx512_bf16 || f.amx_bf16));
}

TEST(Precision, Bf16RequestOnACpuWithoutBf16IsAnError) {
  if (cpu_has_bf16()) GTEST_SKIP() << "this CPU has bf16";
  auto w = random_vec(16, 1);
  TensorView wv = view(w, {4, 4});
  EXPECT_THROW(cpu::Linear(wv, nullptr, Precision::BF16), Error);
}

struct LinearCase {
  int64_t m, k, n;
  bool bias;
};

class Bf16Linear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(Bf16Linear, MatchesRoundedReferenceAndFp32WithinBf16Tolerance) {
  SKIP_WITHOUT_BF16();
  const auto [m, k, n, has_bias] = GetParam();
  auto x = random_vec(size_t(m * k), 31);
  auto w = random_vec(size_t(n * k), 32);
  auto b = random_vec(size_t(n), 33);
  auto res = random_vec(size_t(m * n), 34, -4.f, 4.f);
  TensorView wv = view(w, {n, k}, "w"), bv = view(b, {n}, "b");
  cpu::Linear lin(wv, has_bias ? &bv : nullptr, Precision::BF16);
  EXPECT_EQ(lin.precision(), Precision::BF16);
  const float* bias = has_bias ? b.data() : nullptr;

  std::vector<float> y(size_t(m * n)), rounded(y.size()), fp32(y.size());
  lin.run(x.data(), m, y.data());
  const auto xr = bf16_rounded(x), wr = bf16_rounded(w);
  ref::linear(xr.data(), m, k, wr.data(), n, bias, nullptr, rounded.data());
  ref::linear(x.data(), m, k, w.data(), n, bias, nullptr, fp32.data());
  EXPECT_LE(rel_err(y, rounded), kRoundedTol);
  EXPECT_LE(rel_err(y, fp32), kBf16Tol);
  EXPECT_GT(rel_err(y, fp32), kMinDiff) << "the bf16 path gave fp32 results";

  // Residual: separate buffer (binary post-op or copy + sum) and in place (sum post-op).
  ref::linear(xr.data(), m, k, wr.data(), n, bias, res.data(), rounded.data());
  lin.run(x.data(), m, y.data(), res.data());
  EXPECT_LE(rel_err(y, rounded), kRoundedTol);
  std::vector<float> inplace = res;
  lin.run(x.data(), m, inplace.data(), inplace.data());
  EXPECT_LE(rel_err(inplace, rounded), kRoundedTol);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Linear,
                         ::testing::Values(LinearCase{1, 1, 1, true}, LinearCase{2, 320, 1280, true},
                                           LinearCase{3, 17, 5, false}, LinearCase{154, 768, 320, false},
                                           LinearCase{257, 7, 130, true}, LinearCase{64, 1280, 3, true},
                                           LinearCase{300, 320, 2560, true}, LinearCase{96, 2560, 320, true},
                                           LinearCase{77, 768, 64, true}));

TEST(Bf16Linear, WeightsTakeHalfTheMemoryAndTensorApiWorks) {
  SKIP_WITHOUT_BF16();
  auto w = random_vec(320 * 640, 41);
  TensorView wv = view(w, {640, 320});
  cpu::Linear f32(wv, nullptr), bf16(wv, nullptr, Precision::BF16);
  EXPECT_EQ(f32.weight_bytes(), size_t(320 * 640 * 4));
  EXPECT_EQ(bf16.weight_bytes(), size_t(320 * 640 * 2));
  Tensor x = Tensor::from_data({2, 5, 320}, random_vec(10 * 320, 42).data());
  Tensor y = bf16.run(x);
  EXPECT_EQ(y.shape(), (Shape{2, 5, 640}));
  std::vector<float> expect(10 * 640);
  const auto xr = bf16_rounded(std::vector<float>(x.f32(), x.f32() + x.numel())), wr = bf16_rounded(w);
  ref::linear(xr.data(), 10, 320, wr.data(), 640, nullptr, nullptr, expect.data());
  EXPECT_LE(rel_err(y.f32(), expect.data(), expect.size()), kRoundedTol);
}

TEST(Bf16Linear, PreconvertedInputGivesTheSameBits) {
  SKIP_WITHOUT_BF16();
  const int64_t m = 70, k = 320, n = 96;
  auto x = random_vec(size_t(m * k), 45), w = random_vec(size_t(n * k), 46), b = random_vec(size_t(n), 47);
  auto res = random_vec(size_t(m * n), 48);
  TensorView wv = view(w, {n, k}), bv = view(b, {n});
  cpu::Linear lin(wv, &bv, Precision::BF16);
  std::vector<uint16_t> xb(x.size());
  cpu::f32_to_bf16(x.data(), xb.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(xb[i], f32_to_bf16(x[i])) << i;  // nearest even, as torch
  std::vector<float> y1(size_t(m * n)), y2(y1.size());
  lin.run(x.data(), m, y1.data(), res.data());
  lin.run_bf16(xb.data(), m, y2.data(), res.data());
  EXPECT_TRUE(bitwise_equal(y1, y2));
  cpu::Linear f32(wv, &bv);
  EXPECT_THROW(f32.run_bf16(xb.data(), m, y2.data()), Error);
}

TEST(Bf16Linear, ConcurrentRunsFromSeveralThreadsAgree) {
  SKIP_WITHOUT_BF16();
  const int64_t m = 40, k = 96, n = 48;
  auto w = random_vec(size_t(n * k), 51);
  TensorView wv = view(w, {n, k});
  cpu::Linear lin(wv, nullptr, Precision::BF16);
  std::vector<std::vector<float>> xs, ys(4, std::vector<float>(size_t(m * n)));
  for (int t = 0; t < 4; ++t) xs.push_back(random_vec(size_t(m * k), 60 + t));
#pragma omp parallel for num_threads(4)
  for (int t = 0; t < 4; ++t) lin.run(xs[t].data(), m, ys[t].data());
  for (int t = 0; t < 4; ++t) {
    std::vector<float> expect(size_t(m * n));
    lin.run(xs[t].data(), m, expect.data());
    EXPECT_TRUE(bitwise_equal(ys[t], expect)) << "thread " << t;
  }
}

TEST(F32Unchanged, LinearDefaultAndExplicitF32AreBitwiseEqualAndMatchReference) {
  const int64_t m = 130, k = 320, n = 96;
  auto x = random_vec(size_t(m * k), 71), w = random_vec(size_t(n * k), 72), b = random_vec(size_t(n), 73);
  TensorView wv = view(w, {n, k}), bv = view(b, {n});
  cpu::Linear def(wv, &bv), f32(wv, &bv, Precision::F32);
  EXPECT_EQ(def.precision(), Precision::F32);
  std::vector<float> y1(size_t(m * n)), y2(y1.size()), expect(y1.size());
  def.run(x.data(), m, y1.data());
  f32.run(x.data(), m, y2.data());
  EXPECT_TRUE(bitwise_equal(y1, y2));
  ref::linear(x.data(), m, k, w.data(), n, b.data(), nullptr, expect.data());
  EXPECT_LE(rel_err(y1, expect), 1e-5);
}

struct ConvCase {
  int64_t n, h, w, cin, cout, k;
  int stride;
  cpu::Padding2d pad;
};

class Bf16Conv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Bf16Conv, MatchesRoundedReferenceAndFp32WithinBf16Tolerance) {
  SKIP_WITHOUT_BF16();
  const ConvCase c = GetParam();
  ref::ConvParams p;
  p.n = c.n, p.h = c.h, p.w = c.w, p.cin = c.cin, p.cout = c.cout, p.kh = c.k, p.kw = c.k, p.stride = c.stride;
  p.pad_top = c.pad.top, p.pad_bottom = c.pad.bottom, p.pad_left = c.pad.left, p.pad_right = c.pad.right;
  auto x = random_vec(size_t(c.n * c.h * c.w * c.cin), 81);
  auto w = random_vec(size_t(c.cout * c.cin * c.k * c.k), 82);
  auto b = random_vec(size_t(c.cout), 83);
  TensorView wv = view(w, {c.cout, c.cin, c.k, c.k}, "conv.weight"), bv = view(b, {c.cout}, "conv.bias");
  cpu::Conv2d conv(wv, &bv, c.stride, c.pad, Precision::BF16);
  EXPECT_EQ(conv.precision(), Precision::BF16);
  EXPECT_EQ(conv.weight_bytes(), size_t(w.size() * 2));  // plain bf16 copy until the first run
  const size_t out_n = size_t(c.n * p.out_h() * p.out_w() * c.cout);
  auto res = random_vec(out_n, 84, -3.f, 3.f);

  Tensor xt = Tensor::from_data({c.n, c.h, c.w, c.cin}, x.data());
  Tensor y = conv.run(xt);
  const auto xr = bf16_rounded(x), wr = bf16_rounded(w);
  std::vector<float> rounded(out_n), fp32(out_n);
  ref::conv2d(p, xr.data(), wr.data(), b.data(), nullptr, rounded.data());
  ref::conv2d(p, x.data(), w.data(), b.data(), nullptr, fp32.data());
  EXPECT_LE(rel_err(y.f32(), rounded.data(), out_n), kRoundedTol);
  EXPECT_LE(rel_err(y.f32(), fp32.data(), out_n), kBf16Tol);
  EXPECT_GT(rel_err(y.f32(), fp32.data(), out_n), kMinDiff) << "the bf16 path gave fp32 results";

  ref::conv2d(p, xr.data(), wr.data(), b.data(), res.data(), rounded.data());
  Tensor rt = Tensor::from_data(y.shape(), res.data());
  Tensor y2 = conv.run(xt, &rt);
  EXPECT_LE(rel_err(y2.f32(), rounded.data(), out_n), kRoundedTol);
  conv.run(x.data(), c.n, c.h, c.w, rt.f32(), rt.f32());
  EXPECT_LE(rel_err(rt.f32(), rounded.data(), out_n), kRoundedTol);
}

constexpr cpu::Padding2d pad(int p) { return {p, p, p, p}; }

INSTANTIATE_TEST_SUITE_P(
    Shapes, Bf16Conv,
    ::testing::Values(ConvCase{1, 8, 8, 4, 16, 3, 1, pad(1)},             // conv_in-like, Cin = 4
                      ConvCase{2, 9, 7, 13, 33, 3, 1, pad(1)},            // odd sizes
                      ConvCase{2, 9, 7, 13, 33, 3, 2, pad(1)},            // Downsample2D
                      ConvCase{1, 8, 8, 16, 16, 3, 2, {0, 1, 0, 1}},      // VAE encoder downsample
                      ConvCase{3, 5, 6, 24, 40, 1, 1, pad(0)},            // 1x1 shortcut
                      ConvCase{1, 6, 5, 64, 4, 3, 1, pad(1)},             // conv_out-like, Cout = 4
                      ConvCase{2, 8, 8, 320, 320, 3, 1, pad(1)},          // UNet block shape, K = 2880
                      ConvCase{1, 16, 16, 64, 64, 3, 1, pad(1)}));

// Large bf16 inputs run band by band of output rows (kernels/cpu/conv2d.cpp): 1x128x128x768 in bf16 is
// 25 MB, above the threshold. Same tolerances as the small shapes, with and without residuals.
TEST(Bf16Conv, LargeInputsRunInBands) {
  SKIP_WITHOUT_BF16();
  ref::ConvParams p;
  p.n = 1, p.h = 128, p.w = 128, p.cin = 768, p.cout = 8, p.kh = p.kw = 3, p.stride = 1;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
  auto x = random_vec(size_t(p.h * p.w * p.cin), 101);
  auto w = random_vec(size_t(p.cout * p.cin * 9), 102);
  auto b = random_vec(size_t(p.cout), 103);
  TensorView wv = view(w, {p.cout, p.cin, 3, 3}, "conv.weight"), bv = view(b, {p.cout}, "conv.bias");
  cpu::Conv2d conv(wv, &bv, 1, 1, Precision::BF16);
  const size_t out_n = size_t(p.h * p.w * p.cout);
  auto res = random_vec(out_n, 104, -3.f, 3.f);
  const auto xr = bf16_rounded(x), wr = bf16_rounded(w);
  std::vector<float> want(out_n), want_res(out_n);
  ref::conv2d(p, xr.data(), wr.data(), b.data(), nullptr, want.data());
  ref::conv2d(p, xr.data(), wr.data(), b.data(), res.data(), want_res.data());
  Tensor xt = Tensor::from_data({1, p.h, p.w, p.cin}, x.data());
  Tensor y = conv.run(xt);
  EXPECT_LE(rel_err(y.f32(), want.data(), out_n), kRoundedTol);
  Tensor rt = Tensor::from_data(y.shape(), res.data());
  Tensor y2 = conv.run(xt, &rt);  // residual as a second input
  EXPECT_LE(rel_err(y2.f32(), want_res.data(), out_n), kRoundedTol);
  conv.run(x.data(), 1, p.h, p.w, rt.f32(), rt.f32());  // accumulated into the output
  EXPECT_LE(rel_err(rt.f32(), want_res.data(), out_n), kRoundedTol);
}

// run_upsampled2x: nearest 2x upsample fused into the band copy (bf16) gives what upsample + conv gives;
// in fp32 it is exactly upsample + conv.
TEST(Bf16Conv, UpsampledRunMatchesUpsampleThenConv) {
  const int64_t h = 20, w = 24, cin = 32, cout = 24;
  auto x = random_vec(size_t(h * w * cin), 111);
  auto wt = random_vec(size_t(cout * cin * 9), 112);
  auto b = random_vec(size_t(cout), 113);
  std::vector<float> up(size_t(4 * h * w * cin));
  for (int64_t y = 0; y < 2 * h; ++y)
    for (int64_t xx = 0; xx < 2 * w; ++xx)
      std::memcpy(&up[size_t((y * 2 * w + xx) * cin)], &x[size_t(((y / 2) * w + xx / 2) * cin)], size_t(cin) * 4);
  TensorView wv = view(wt, {cout, cin, 3, 3}, "up.conv.weight"), bv = view(b, {cout}, "up.conv.bias");
  Tensor xt = Tensor::from_data({1, h, w, cin}, x.data()), ut = Tensor::from_data({1, 2 * h, 2 * w, cin}, up.data());
  cpu::Conv2d f32(wv, &bv, 1, 1, Precision::F32);
  Tensor a = f32.run_upsampled2x(xt), c = f32.run(ut);
  ASSERT_EQ(a.shape(), (Shape{1, 2 * h, 2 * w, cout}));
  EXPECT_EQ(std::memcmp(a.f32(), c.f32(), a.nbytes()), 0);
  if (!cpu_has_bf16()) GTEST_SKIP() << "no AVX512-BF16 / AMX-BF16 on this CPU";
  ref::ConvParams p;
  p.n = 1, p.h = 2 * h, p.w = 2 * w, p.cin = cin, p.cout = cout, p.kh = p.kw = 3, p.stride = 1;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
  const auto ur = bf16_rounded(up), wr = bf16_rounded(wt);
  std::vector<float> want(size_t(4 * h * w * cout));
  ref::conv2d(p, ur.data(), wr.data(), b.data(), nullptr, want.data());
  cpu::Conv2d bf(wv, &bv, 1, 1, Precision::BF16);
  Tensor y = bf.run_upsampled2x(xt);
  ASSERT_EQ(y.shape(), (Shape{1, 2 * h, 2 * w, cout}));
  EXPECT_LE(rel_err(y.f32(), want.data(), want.size()), kRoundedTol);
}

TEST(F32Unchanged, ConvDefaultAndExplicitF32AreBitwiseEqual) {
  auto x = random_vec(size_t(2 * 9 * 9 * 32), 91), w = random_vec(size_t(48 * 32 * 9), 92);
  TensorView wv = view(w, {48, 32, 3, 3});
  cpu::Conv2d def(wv, nullptr, 1, 1), f32(wv, nullptr, 1, 1, Precision::F32);
  EXPECT_EQ(def.weight_bytes(), w.size() * 4);
  Tensor xt = Tensor::from_data({2, 9, 9, 32}, x.data());
  Tensor y1 = def.run(xt), y2 = f32.run(xt);
  EXPECT_EQ(std::memcmp(y1.f32(), y2.f32(), y1.nbytes()), 0);
}

struct AttnCase {
  int64_t batch, heads, sq, sk, d;
  bool causal;
  float score_scale = 1.f;
};

// Which bf16 kernel runs: what cpu::attention picks, or one of the two implementations directly.
enum class Bf16Path { kDispatch, kAvx512Bf16, kAmx };

void run_bf16(Bf16Path path, cpu::AttentionShape s, const float* q, const float* k, const float* v, float* out) {
  s.precision = Precision::BF16;
  if (path == Bf16Path::kDispatch) return cpu::attention(s, q, k, v, out);
  const cpu::AttentionShape r = cpu::attention_detail::resolve(s);
  if (path == Bf16Path::kAmx)
    cpu::attention_detail::attention_amx_bf16(r, q, k, v, out);
  else
    cpu::attention_detail::attention_avx512_bf16(r, q, k, v, out);
}

bool path_available(Bf16Path path) {
  const CpuFeatures& f = cpu_features();
  switch (path) {
    case Bf16Path::kDispatch: return cpu_has_bf16();
    case Bf16Path::kAvx512Bf16: return f.avx512_core() && f.avx512_bf16;
    case Bf16Path::kAmx: return f.avx512_core() && f.avx512_bf16 && amx_tiles_usable();
  }
  return false;
}

class Bf16Attention : public ::testing::TestWithParam<std::tuple<AttnCase, Bf16Path>> {};

TEST_P(Bf16Attention, MatchesFp32ReferenceWithinBf16Tolerance) {
  const auto [c, path] = GetParam();
  if (!path_available(path)) GTEST_SKIP() << "this bf16 attention kernel does not run on this CPU";
  cpu::AttentionShape s;
  s.batch = c.batch, s.heads = c.heads, s.q_len = c.sq, s.kv_len = c.sk, s.head_dim = c.d;
  s.scale = c.score_scale / std::sqrt(float(c.d));
  s.causal = c.causal;
  const int64_t row = c.heads * c.d;
  auto q = random_vec(size_t(c.batch * c.sq * row), 101);
  auto k = random_vec(size_t(c.batch * c.sk * row), 102);
  auto v = random_vec(size_t(c.batch * c.sk * row), 103, -2.f, 3.f);
  std::vector<float> out(q.size()), expect(q.size()), fp32(q.size());
  ref::attention(s, q.data(), k.data(), v.data(), expect.data());
  cpu::attention(s, q.data(), k.data(), v.data(), fp32.data());
  run_bf16(path, s, q.data(), k.data(), v.data(), out.data());
  EXPECT_LE(rel_err(out, expect), kBf16Tol);
  EXPECT_GT(rel_err(out, fp32), kMinDiff) << "the bf16 path gave fp32 results";
  // Rounding q, k, v to bf16 first accounts for part of the difference: what is left is the
  // rounding of the probabilities and of q * scale (rather than q), which a peaked softmax
  // amplifies, so this is checked for unit score scales only (one key: p = 1 up to the ~3e-6 of
  // the AMX kernel's exp2).
  if (c.score_scale != 1.f) return;
  const auto qr = bf16_rounded(q), kr = bf16_rounded(k), vr = bf16_rounded(v);
  ref::attention(s, qr.data(), kr.data(), vr.data(), expect.data());
  EXPECT_LE(rel_err(out, expect), c.sk == 1 ? 1e-5 : 3e-3);
}

std::string attn_name(const ::testing::TestParamInfo<std::tuple<AttnCase, Bf16Path>>& info) {
  const AttnCase& c = std::get<0>(info.param);
  static const char* paths[] = {"dispatch", "avx512bf16", "amx"};
  return "b" + std::to_string(c.batch) + "h" + std::to_string(c.heads) + "q" + std::to_string(c.sq) + "k" +
         std::to_string(c.sk) + "d" + std::to_string(c.d) + (c.causal ? "causal" : "") +
         (c.score_scale != 1.f ? "peaked" : "") + "_" + paths[int(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Attention,
                         ::testing::Combine(::testing::Values(AttnCase{2, 8, 200, 200, 40, false},   // SD self-attention, d40
                                           AttnCase{2, 8, 130, 77, 40, false},    // cross-attention, 77 tokens
                                           AttnCase{1, 4, 100, 100, 80, false},   // d80
                                           AttnCase{1, 2, 64, 64, 160, false},    // d160
                                           AttnCase{1, 1, 70, 70, 512, false},    // VAE mid-block
                                           AttnCase{2, 12, 77, 77, 64, true},     // CLIP, causal
                                           AttnCase{1, 3, 50, 37, 7, false},      // odd head_dim and kv_len
                                           AttnCase{1, 2, 17, 1, 33, false},      // one key
                                           AttnCase{1, 2, 300, 259, 40, false, 8.f},  // peaked softmax
                                           AttnCase{1, 1, 9, 9, 1100, false},     // head_dim > 1024
                                           AttnCase{1, 2, 100, 300, 64, true},    // causal, kv_len > q_len
                                           AttnCase{1, 1, 40, 1000, 24, false}),  // several key blocks
                                           ::testing::Values(Bf16Path::kDispatch, Bf16Path::kAvx512Bf16,
                                                             Bf16Path::kAmx)),
                         attn_name);

// q, k, v interleaved in one [B, S, 3 * heads * D] buffer (a fused QKV projection), output written
// into a wider [B, Sq, heads * D + 8] buffer: same bits as the packed layout, padding untouched.
void check_strided_matches_packed(const AttnCase& c, Bf16Path path) {
  SCOPED_TRACE("d = " + std::to_string(c.d) + ", path " + std::to_string(int(path)));
  const int64_t row = c.heads * c.d, n = c.batch * c.sq;
  auto qkv = random_vec(size_t(n * 3 * row), 111);
  std::vector<float> q(size_t(n * row)), k(q.size()), v(q.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t e = 0; e < row; ++e) {
      q[size_t(t * row + e)] = qkv[size_t(t * 3 * row + e)];
      k[size_t(t * row + e)] = qkv[size_t(t * 3 * row + row + e)];
      v[size_t(t * row + e)] = qkv[size_t(t * 3 * row + 2 * row + e)];
    }
  cpu::AttentionShape s;
  s.batch = c.batch, s.heads = c.heads, s.q_len = c.sq, s.kv_len = c.sk, s.head_dim = c.d;
  s.scale = c.score_scale / std::sqrt(float(c.d));
  s.causal = c.causal;
  std::vector<float> packed(q.size());
  run_bf16(path, s, q.data(), k.data(), v.data(), packed.data());
  s.q_stride = s.k_stride = s.v_stride = 3 * row;
  s.o_stride = row + 8;
  std::vector<float> wide(size_t(n * (row + 8)), -7.f);
  run_bf16(path, s, qkv.data(), qkv.data() + row, qkv.data() + 2 * row, wide.data());
  for (int64_t t = 0; t < n; ++t) {
    ASSERT_EQ(std::memcmp(&wide[size_t(t * (row + 8))], &packed[size_t(t * row)], size_t(row) * 4), 0) << "row " << t;
    for (int e = 0; e < 8; ++e) ASSERT_EQ(wide[size_t(t * (row + 8) + row + e)], -7.f) << "padding overwritten";
  }
}


TEST(Bf16Attention, StridedLayoutMatchesPacked) {
  SKIP_WITHOUT_BF16();
  for (Bf16Path path : {Bf16Path::kAvx512Bf16, Bf16Path::kAmx}) {
    if (!path_available(path)) continue;
    for (const AttnCase& c : {AttnCase{2, 8, 200, 200, 40, false}, AttnCase{2, 12, 77, 77, 64, true},
                              AttnCase{1, 3, 37, 37, 7, false}, AttnCase{1, 2, 33, 33, 160, false}})
      check_strided_matches_packed(c, path);
  }
}

TEST(Bf16Attention, EmptyBatchAndBadShapes) {
  SKIP_WITHOUT_BF16();
  cpu::AttentionShape s;
  s.batch = 0, s.heads = 2, s.q_len = 5, s.kv_len = 5, s.head_dim = 8, s.precision = Precision::BF16;
  cpu::attention(s, nullptr, nullptr, nullptr, nullptr);  // nothing to do
  s.batch = 1, s.kv_len = 0;
  std::vector<float> buf(80);
  EXPECT_THROW(cpu::attention(s, buf.data(), buf.data(), buf.data(), buf.data()), Error);
}

TEST(F32Unchanged, AttentionWithF32PrecisionIsTheFp32Kernel) {
  cpu::AttentionShape s;
  s.batch = 2, s.heads = 3, s.q_len = 70, s.kv_len = 45, s.head_dim = 40, s.scale = 0.158f;
  auto q = random_vec(size_t(2 * 70 * 120), 121), k = random_vec(size_t(2 * 45 * 120), 122),
       v = random_vec(size_t(2 * 45 * 120), 123);
  std::vector<float> a(q.size()), b(q.size());
  s.precision = Precision::F32;
  cpu::attention(s, q.data(), k.data(), v.data(), a.data());
  cpu::AttentionShape r = cpu::attention_detail::resolve(s);
  if (cpu_features().avx512_core())
    cpu::attention_detail::attention_avx512(r, q.data(), k.data(), v.data(), b.data());
  else
    cpu::attention_detail::attention_portable(r, q.data(), k.data(), v.data(), b.data());
  EXPECT_TRUE(bitwise_equal(a, b));
}

}  // namespace
}  // namespace sdpal
