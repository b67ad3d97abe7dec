// Norms and element-wise kernels against the double-precision reference.
// Tolerance: max abs error <= 1e-5 x the output's max abs value unless stated.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/norms.h"
#include "kernels/reference/pointwise.h"

namespace sdpal {
namespace {

using testing::random_vec;
using testing::rel_err;

constexpr double kTol = 1e-5;

struct GnCase {
  int64_t n, hw, c, groups;
  float offset;  // added to every input: a large one tests the variance's cancellation
  bool affine;
};

class GroupNormVsReference : public ::testing::TestWithParam<GnCase> {};

TEST_P(GroupNormVsReference, WithAndWithoutSiluInPlaceAndNot) {
  const GnCase c = GetParam();
  auto x = random_vec(size_t(c.n * c.hw * c.c), 51, -2.f + c.offset, 3.f + c.offset);
  auto gamma = random_vec(size_t(c.c), 52, 0.5f, 1.5f);
  auto beta = random_vec(size_t(c.c), 53);
  const float* g = c.affine ? gamma.data() : nullptr;
  const float* b = c.affine ? beta.data() : nullptr;
  for (bool silu : {false, true}) {
    std::vector<float> out(x.size()), expect(x.size());
    cpu::group_norm(x.data(), out.data(), c.n, c.hw, c.c, c.groups, g, b, 1e-5f, silu);
    ref::group_norm(x.data(), expect.data(), c.n, c.hw, c.c, c.groups, g, b, 1e-5f, silu);
    EXPECT_LE(rel_err(out, expect), kTol) << "silu " << silu;
    std::vector<float> inplace = x;
    cpu::group_norm(inplace.data(), inplace.data(), c.n, c.hw, c.c, c.groups, g, b, 1e-5f, silu);
    EXPECT_EQ(inplace, out);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GroupNormVsReference,
                         ::testing::Values(GnCase{2, 64, 320, 32, 0.f, true}, GnCase{1, 1, 32, 32, 0.f, true},
                                           GnCase{3, 7, 96, 32, 0.f, true}, GnCase{1, 4096, 64, 32, 0.f, true},
                                           GnCase{1, 1000, 128, 32, 0.f, true}, GnCase{2, 50, 12, 1, 0.f, false},
                                           GnCase{1, 33, 40, 40, 0.f, true}, GnCase{2, 300, 64, 32, 1000.f, true},
                                           GnCase{1, 700, 8, 2, -5000.f, false}));

TEST(GroupNorm, ConstantGroupGivesBetaAndRejectsBadGroups) {
  std::vector<float> x(4 * 8, 3.25f), out(x.size());
  auto beta = random_vec(8, 1);
  std::vector<float> gamma(8, 2.f);
  cpu::group_norm(x.data(), out.data(), 1, 4, 8, 4, gamma.data(), beta.data(), 1e-6f, false);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], beta[i % 8], 1e-6);
  EXPECT_THROW(cpu::group_norm(x.data(), out.data(), 1, 4, 8, 3, nullptr, nullptr, 1e-6f, false), Error);
}

TEST(LayerNorm, MatchesReference) {
  for (int64_t c : {1, 7, 40, 320, 768, 1280}) {
    for (float offset : {0.f, 300.f}) {
      const int64_t rows = 37;
      auto x = random_vec(size_t(rows * c), 61, -1.f + offset, 2.f + offset);
      auto gamma = random_vec(size_t(c), 62);
      auto beta = random_vec(size_t(c), 63);
      std::vector<float> out(x.size()), expect(x.size());
      cpu::layer_norm(x.data(), out.data(), rows, c, gamma.data(), beta.data(), 1e-5f);
      ref::layer_norm(x.data(), expect.data(), rows, c, gamma.data(), beta.data(), 1e-5f);
      EXPECT_LE(rel_err(out, expect), kTol) << "c " << c << " offset " << offset;
      cpu::layer_norm(x.data(), x.data(), rows, c, nullptr, nullptr, 1e-5f);  // in place, no affine
      double mean = 0;
      for (int64_t i = 0; i < c; ++i) mean += x[size_t(i)];
      if (c > 1) {
        EXPECT_NEAR(mean / double(c), 0.0, 1e-5);
      }
    }
  }
}

// Inputs covering the activations' whole useful range and the saturated tails.
std::vector<float> activation_inputs() {
  std::vector<float> x = random_vec(100003, 71, -12.f, 12.f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 80.f, -80.f, 100.f, -100.f, 1e4f, -1e4f}) x.push_back(v);
  return x;
}

// Absolute-error check per element, scaled by max(1, |expected|): activations are near-identity
// for large x and near zero for very negative x, where a max-abs-relative metric is too loose.
double act_err(const std::vector<float>& out, const std::vector<float>& expect) {
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i)
    worst = std::max(worst, std::fabs(double(out[i]) - double(expect[i])) / std::max(1.0, std::fabs(double(expect[i]))));
  return worst;
}

TEST(Elementwise, ActivationsMatchReference) {
  const auto x = activation_inputs();
  std::vector<float> expect(x.size());
  auto y = x;
  cpu::silu(y.data(), int64_t(y.size()));
  for (size_t i = 0; i < x.size(); ++i) expect[i] = ref::silu(x[i]);
  EXPECT_LE(act_err(y, expect), 1e-6);
  // GELU uses A&S 7.1.26 for erf (as torch's vectorized kernel): |erf error| <= 1.5e-7.
  y = x;
  cpu::gelu(y.data(), int64_t(y.size()));
  for (size_t i = 0; i < x.size(); ++i) expect[i] = ref::gelu(x[i]);
  EXPECT_LE(act_err(y, expect), 1e-6);
  y = x;
  cpu::quick_gelu(y.data(), int64_t(y.size()));
  for (size_t i = 0; i < x.size(); ++i) expect[i] = ref::quick_gelu(x[i]);
  EXPECT_LE(act_err(y, expect), 1e-6);
  cpu::silu(y.data(), 0);  // n == 0 is fine
}

TEST(Elementwise, GegluAddScaleUpsample) {
  const int64_t rows = 130, d = 77;
  auto x = random_vec(size_t(rows * 2 * d), 81, -6.f, 6.f);
  std::vector<float> out(size_t(rows * d)), expect(out.size());
  cpu::geglu(x.data(), out.data(), rows, d);
  ref::geglu(x.data(), expect.data(), rows, d);
  EXPECT_LE(rel_err(out, expect), kTol);

  auto a = random_vec(100000, 82), b = random_vec(100000, 83);
  std::vector<float> sum(a.size());
  cpu::add(a.data(), b.data(), sum.data(), int64_t(a.size()));
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(sum[i], a[i] + b[i]);
  cpu::add(a.data(), b.data(), a.data(), int64_t(a.size()));  // aliased
  EXPECT_EQ(a, sum);
  cpu::scale(sum.data(), 0.5f, int64_t(sum.size()));
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(sum[i], a[i] * 0.5f);

  const int64_t n = 2, h = 3, w = 5, c = 7;
  auto img = random_vec(size_t(n * h * w * c), 84);
  std::vector<float> up(img.size() * 4), up_ref(up.size());
  cpu::upsample_nearest2x(img.data(), up.data(), n, h, w, c);
  ref::upsample_nearest2x(img.data(), up_ref.data(), n, h, w, c);
  EXPECT_EQ(up, up_ref);
}

}  // namespace
}  // namespace sdpal
