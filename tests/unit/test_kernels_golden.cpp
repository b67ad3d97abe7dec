// Kernels against torch 2.5.1 fp32 CPU outputs (tests/reference/make_kernel_goldens.py).
// Tolerance: max abs error <= 1e-5 x the output's max abs value (2e-6 for the activations, whose
// formulas match torch's vectorized kernels).
#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/norms.h"

namespace sdpal {
namespace {

using testing::Goldens;
using testing::rel_err;
using testing::view;

constexpr double kTol = 1e-5;

const Goldens& goldens() {
  static const Goldens g(std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/kernels/kernels.safetensors");
  return g;
}

TEST(KernelGoldens, GroupNormWithAndWithoutSilu) {
  const Goldens& g = goldens();
  const Shape& s = g.shape("group_norm.x");  // [N, H, W, C]
  const auto& x = g.data("group_norm.x");
  std::vector<float> out(x.size());
  cpu::group_norm(x.data(), out.data(), s[0], s[1] * s[2], s[3], 32, g.data("group_norm.weight").data(),
                  g.data("group_norm.bias").data(), 1e-5f, false);
  EXPECT_LE(rel_err(out, g.data("group_norm.y")), kTol);
  cpu::group_norm(x.data(), out.data(), s[0], s[1] * s[2], s[3], 32, g.data("group_norm.weight").data(),
                  g.data("group_norm.bias").data(), 1e-5f, true);
  EXPECT_LE(rel_err(out, g.data("group_norm.y_silu")), kTol);

  const Shape& so = g.shape("group_norm_offset.x");
  const auto& xo = g.data("group_norm_offset.x");
  std::vector<float> yo(xo.size());
  cpu::group_norm(xo.data(), yo.data(), so[0], so[1] * so[2], so[3], 1, nullptr, nullptr, 1e-6f, false);
  EXPECT_LE(rel_err(yo, g.data("group_norm_offset.y")), kTol);
}

TEST(KernelGoldens, LayerNorm) {
  const Goldens& g = goldens();
  const auto& x = g.data("layer_norm.x");
  std::vector<float> out(x.size());
  cpu::layer_norm(x.data(), out.data(), int64_t(x.size()) / 320, 320, g.data("layer_norm.weight").data(),
                  g.data("layer_norm.bias").data(), 1e-5f);
  EXPECT_LE(rel_err(out, g.data("layer_norm.y")), kTol);
}

TEST(KernelGoldens, Activations) {
  const Goldens& g = goldens();
  const auto& x = g.data("act.x");
  auto y = x;
  cpu::gelu(y.data(), int64_t(y.size()));
  EXPECT_LE(rel_err(y, g.data("act.gelu")), 2e-6);
  y = x;
  cpu::silu(y.data(), int64_t(y.size()));
  EXPECT_LE(rel_err(y, g.data("act.silu")), 2e-6);
  y = x;
  cpu::quick_gelu(y.data(), int64_t(y.size()));
  EXPECT_LE(rel_err(y, g.data("act.quick_gelu")), 2e-6);
}

TEST(KernelGoldens, ScaledDotProductAttention) {
  const Goldens& g = goldens();
  struct Case {
    const char* name;
    int64_t heads;
    bool causal;
  };
  for (Case c : {Case{"attn_self", 2, false}, Case{"attn_cross", 2, false}, Case{"attn_causal", 2, true},
                 Case{"attn_vae", 1, false}}) {
    const std::string n = c.name;
    const Shape& qs = g.shape(n + ".q");  // [B, Sq, heads * D]
    const Shape& ks = g.shape(n + ".k");
    cpu::AttentionShape s;
    s.batch = qs[0], s.heads = c.heads, s.q_len = qs[1], s.kv_len = ks[1], s.head_dim = qs[2] / c.heads;
    s.scale = 1.f / std::sqrt(float(s.head_dim));
    s.causal = c.causal;
    std::vector<float> out(g.data(n + ".out").size());
    cpu::attention(s, g.data(n + ".q").data(), g.data(n + ".k").data(), g.data(n + ".v").data(), out.data());
    EXPECT_LE(rel_err(out, g.data(n + ".out")), kTol) << n;
  }
}

TEST(KernelGoldens, Conv2d) {
  const Goldens& g = goldens();
  Tensor x = Tensor::from_data(g.shape("conv.x"), g.data("conv.x").data());
  TensorView w3 = view(g.data("conv.w3"), g.shape("conv.w3")), b3 = view(g.data("conv.b3"), g.shape("conv.b3"));
  TensorView w1 = view(g.data("conv.w1"), g.shape("conv.w1")), b1 = view(g.data("conv.b1"), g.shape("conv.b1"));
  struct Case {
    const char* golden;
    cpu::Conv2d conv;
  };
  Case cases[] = {{"conv.y3", cpu::Conv2d(w3, &b3, 1, 1)},
                  {"conv.y3s2", cpu::Conv2d(w3, &b3, 2, 1)},
                  {"conv.y1", cpu::Conv2d(w1, &b1, 1, 0)},
                  {"conv.y3_asym", cpu::Conv2d(w3, &b3, 2, cpu::Padding2d{0, 1, 0, 1})}};
  for (Case& c : cases) {
    Tensor y = c.conv.run(x);
    ASSERT_EQ(y.shape(), g.shape(c.golden)) << c.golden;
    const auto& expect = g.data(c.golden);
    EXPECT_LE(rel_err(y.f32(), expect.data(), expect.size()), kTol) << c.golden;
  }
}

}  // namespace
}  // namespace sdpal
