// cpu::Linear and cpu::Conv2d (oneDNN) against the naive reference loops.
// Tolerance: max abs error <= 1e-5 x the output's max abs value (fp32 vs double accumulation).
#include <gtest/gtest.h>

#include <tuple>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/linear.h"
#include "kernels/reference/gemm.h"

namespace sdpal {
namespace {

using testing::random_vec;
using testing::rel_err;
using testing::view;

constexpr double kTol = 1e-5;

struct LinearCase {
  int64_t m, k, n;
  bool bias;
};

class LinearVsReference : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearVsReference, MatchesWithAndWithoutResidual) {
  const auto [m, k, n, has_bias] = GetParam();
  auto x = random_vec(size_t(m * k), 1);
  auto w = random_vec(size_t(n * k), 2);
  auto b = random_vec(size_t(n), 3);
  auto res = random_vec(size_t(m * n), 4, -4.f, 4.f);
  TensorView wv = view(w, {n, k}, "w"), bv = view(b, {n}, "b");
  cpu::Linear lin(wv, has_bias ? &bv : nullptr);
  EXPECT_EQ(lin.in_features(), k);
  EXPECT_EQ(lin.out_features(), n);

  std::vector<float> y(size_t(m * n)), expect(size_t(m * n));
  lin.run(x.data(), m, y.data());
  ref::linear(x.data(), m, k, w.data(), n, has_bias ? b.data() : nullptr, nullptr, expect.data());
  EXPECT_LE(rel_err(y, expect), kTol);

  // Residual in a separate buffer (fused binary add) and aliased with y (fused sum).
  ref::linear(x.data(), m, k, w.data(), n, has_bias ? b.data() : nullptr, res.data(), expect.data());
  lin.run(x.data(), m, y.data(), res.data());
  EXPECT_LE(rel_err(y, expect), kTol);
  std::vector<float> inplace = res;
  lin.run(x.data(), m, inplace.data(), inplace.data());
  EXPECT_LE(rel_err(inplace, expect), kTol);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearVsReference,
                         ::testing::Values(LinearCase{1, 1, 1, true}, LinearCase{1, 320, 1280, true},
                                           LinearCase{2, 320, 1280, true}, LinearCase{3, 17, 5, false},
                                           LinearCase{77, 768, 64, true}, LinearCase{154, 33, 77, true},
                                           LinearCase{200, 320, 320, false}, LinearCase{257, 7, 130, true},
                                           LinearCase{64, 1280, 3, true}));

TEST(Linear, ConvertsHalfAndBfloat16WeightsAndAcceptsOneByOneConvShape) {
  const int64_t m = 9, k = 24, n = 10;
  auto x = random_vec(size_t(m * k), 5);
  auto wf = random_vec(size_t(n * k), 6);
  for (DType dt : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> raw(wf.size());
    std::vector<float> rounded(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) {
      raw[i] = dt == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
      rounded[i] = dt == DType::F16 ? f16_to_f32(raw[i]) : bf16_to_f32(raw[i]);
    }
    TensorView wv;
    wv.name = "w16";
    wv.dtype = dt;
    wv.shape = {n, k, 1, 1};
    wv.data = reinterpret_cast<const uint8_t*>(raw.data());
    wv.nbytes = raw.size() * 2;
    cpu::Linear lin(wv, nullptr);
    std::vector<float> y(size_t(m * n)), expect(size_t(m * n));
    lin.run(x.data(), m, y.data());
    ref::linear(x.data(), m, k, rounded.data(), n, nullptr, nullptr, expect.data());
    EXPECT_LE(rel_err(y, expect), kTol) << dtype_name(dt);
  }
}

TEST(Linear, CachesOnePlanPerRowCountAndTensorApiKeepsLeadingDims) {
  auto w = random_vec(64 * 32, 7);
  auto b = random_vec(64, 8);
  TensorView wv = view(w, {64, 32}), bv = view(b, {64});
  cpu::Linear lin(wv, &bv);
  Tensor x = Tensor::from_data({2, 3, 32}, random_vec(2 * 3 * 32, 9).data());
  Tensor y = lin.run(x);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 64}));
  lin.run(x);
  EXPECT_EQ(lin.cached_plans(), 1);
  Tensor r = Tensor::from_data({2, 3, 64}, random_vec(6 * 64, 10).data());
  Tensor y2 = lin.run(x, &r);
  EXPECT_EQ(lin.cached_plans(), 2);  // residual variant
  std::vector<float> expect(6 * 64);
  ref::linear(x.f32(), 6, 32, w.data(), 64, b.data(), r.f32(), expect.data());
  EXPECT_LE(testing::rel_err(y2.f32(), expect.data(), expect.size()), kTol);
  lin.run(x.reshape({1, 6, 32}));
  EXPECT_EQ(lin.cached_plans(), 2);  // same M = 6
  lin.run(x.slice0(0, 1));
  EXPECT_EQ(lin.cached_plans(), 3);  // M = 3
}

TEST(Linear, RejectsBadShapes) {
  auto w = random_vec(12, 1);
  auto b = random_vec(5, 1);
  TensorView w3 = view(w, {2, 3, 2}), w2 = view(w, {4, 3}), bv = view(b, {5});
  EXPECT_THROW(cpu::Linear(w3, nullptr), Error);
  EXPECT_THROW(cpu::Linear(w2, &bv), Error);
  cpu::Linear lin(w2, nullptr);
  Tensor x = Tensor::zeros({2, 4});
  EXPECT_THROW(lin.run(x), Error);
}

struct ConvCase {
  int64_t n, h, w, cin, cout, k;
  int stride;
  cpu::Padding2d pad;
  bool bias;
};

class ConvVsReference : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvVsReference, MatchesWithAndWithoutResidual) {
  const ConvCase c = GetParam();
  ref::ConvParams p;
  p.n = c.n, p.h = c.h, p.w = c.w, p.cin = c.cin, p.cout = c.cout, p.kh = c.k, p.kw = c.k, p.stride = c.stride;
  p.pad_top = c.pad.top, p.pad_bottom = c.pad.bottom, p.pad_left = c.pad.left, p.pad_right = c.pad.right;
  auto x = random_vec(size_t(c.n * c.h * c.w * c.cin), 11);
  auto w = random_vec(size_t(c.cout * c.cin * c.k * c.k), 12);
  auto b = random_vec(size_t(c.cout), 13);
  TensorView wv = view(w, {c.cout, c.cin, c.k, c.k}, "conv.weight"), bv = view(b, {c.cout}, "conv.bias");
  cpu::Conv2d conv(wv, c.bias ? &bv : nullptr, c.stride, c.pad);
  ASSERT_EQ(conv.out_height(c.h), p.out_h());
  ASSERT_EQ(conv.out_width(c.w), p.out_w());
  const size_t out_n = size_t(c.n * p.out_h() * p.out_w() * c.cout);
  auto res = random_vec(out_n, 14, -3.f, 3.f);

  Tensor xt = Tensor::from_data({c.n, c.h, c.w, c.cin}, x.data());
  Tensor y = conv.run(xt);
  ASSERT_EQ(y.shape(), (Shape{c.n, p.out_h(), p.out_w(), c.cout}));
  std::vector<float> expect(out_n);
  ref::conv2d(p, x.data(), w.data(), c.bias ? b.data() : nullptr, nullptr, expect.data());
  EXPECT_LE(rel_err(y.f32(), expect.data(), out_n), kTol);

  ref::conv2d(p, x.data(), w.data(), c.bias ? b.data() : nullptr, res.data(), expect.data());
  Tensor rt = Tensor::from_data(y.shape(), res.data());
  Tensor y2 = conv.run(xt, &rt);
  EXPECT_LE(rel_err(y2.f32(), expect.data(), out_n), kTol);
  conv.run(x.data(), c.n, c.h, c.w, rt.f32(), rt.f32());  // residual aliased with the output
  EXPECT_LE(rel_err(rt.f32(), expect.data(), out_n), kTol);
}

constexpr cpu::Padding2d pad(int p) { return {p, p, p, p}; }

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvVsReference,
    ::testing::Values(ConvCase{1, 8, 8, 4, 16, 3, 1, pad(1), true},       // conv_in-like, Cin = 4
                      ConvCase{2, 9, 7, 13, 33, 3, 1, pad(1), true},      // odd sizes
                      ConvCase{2, 9, 7, 13, 33, 3, 2, pad(1), true},      // Downsample2D (padding=1)
                      ConvCase{1, 8, 8, 16, 16, 3, 2, {0, 1, 0, 1}, true},  // VAE encoder downsample
                      ConvCase{1, 7, 9, 3, 8, 3, 2, {0, 1, 0, 1}, false},
                      ConvCase{3, 5, 6, 24, 40, 1, 1, pad(0), true},      // 1x1 shortcut
                      ConvCase{1, 1, 1, 17, 5, 1, 1, pad(0), true},
                      ConvCase{1, 6, 5, 64, 4, 3, 1, pad(1), true},       // conv_out-like, Cout = 4
                      ConvCase{2, 11, 10, 8, 12, 5, 1, pad(2), true},     // k = 5
                      ConvCase{1, 4, 4, 32, 32, 3, 1, pad(1), false},
                      ConvCase{1, 16, 16, 64, 64, 3, 1, pad(1), true}));

TEST(Conv2d, CachesPlansPerShapeAndReportsGeometry) {
  auto w = random_vec(8 * 4 * 3 * 3, 1);
  TensorView wv = view(w, {8, 4, 3, 3});
  cpu::Conv2d conv(wv, nullptr, 2, 1);
  EXPECT_EQ(conv.in_channels(), 4);
  EXPECT_EQ(conv.out_channels(), 8);
  EXPECT_EQ(conv.kernel_size(), 3);
  EXPECT_EQ(conv.stride(), 2);
  EXPECT_EQ(conv.padding().bottom, 1);
  Tensor x = Tensor::zeros({1, 6, 6, 4});
  conv.run(x);
  conv.run(x);
  EXPECT_EQ(conv.cached_plans(), 1);
  Tensor x2 = Tensor::zeros({2, 6, 6, 4});
  EXPECT_EQ(conv.run(x2).shape(), (Shape{2, 3, 3, 8}));
  EXPECT_EQ(conv.cached_plans(), 2);
}

TEST(Conv2d, RejectsBadInputs) {
  auto w = random_vec(8 * 4 * 3 * 3, 1);
  TensorView wv = view(w, {8, 4, 3, 3}), flat = view(w, {8, 36});
  EXPECT_THROW(cpu::Conv2d(flat, nullptr, 1, 1), Error);
  EXPECT_THROW(cpu::Conv2d(wv, nullptr, 0, 1), Error);
  cpu::Conv2d conv(wv, nullptr, 1, 0);
  EXPECT_THROW(conv.run(Tensor::zeros({1, 6, 6, 5})), Error);  // wrong channel count
  EXPECT_THROW(conv.run(Tensor::zeros({1, 2, 2, 4})), Error);  // smaller than the kernel
  Tensor bad_res = Tensor::zeros({1, 3, 3, 8});
  EXPECT_THROW(conv.run(Tensor::zeros({1, 6, 6, 4}), &bad_res), Error);
}

}  // namespace
}  // namespace sdpal
