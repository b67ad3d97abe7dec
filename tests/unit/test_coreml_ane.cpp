// The tiny test model's UNet in Apple's ANE layout (tests/fixtures/tiny-sd-v1-coreml-ane, made by
// tests/reference/make_coreml_ane.py): the form of Apple's split_einsum_v2 releases, with 1x1 convs
// for the linears, [B, C, 1, S] activations, LayerNormANE ((x + b / w) * w with unnamed constants)
// and per-head split-einsum attention over query chunks. Both executors match diffusers run on the
// program's dequantized weights (tests/goldens/coreml/tiny_model_ane) and each other, and a
// resources folder with that UNet draws the picture of the plain one (same weights, diffusers' layout).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "coreml_layout.h"
#include "golden.h"
#include "io/coreml/model_folder.h"
#include "model/coreml_configs.h"
#include "model/coreml_mil_networks.h"
#include "model/coreml_resources.h"
#include "model/coreml_weights.h"
#include "model/weight_binder.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

using testing::apple_context_to_bsc;
using testing::expect_close;
using testing::Golden;
using testing::repo_path;

const char* kVariants[] = {"fp16", "palettized6"};

std::string ane_dir(const std::string& variant) { return repo_path("tests/fixtures/tiny-sd-v1-coreml-ane/" + variant); }
std::string unet_package(const std::string& variant) {
  return ane_dir(variant) + "/Stable_Diffusion_version_tiny-sd-v1_unet.mlpackage";
}

mil::InterpreterOptions exact() {
  mil::InterpreterOptions o;
  o.fp16_rounding = false;
  return o;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, double(std::fabs(a.f32()[i] - b.f32()[i])));
  return d;
}

class CoreMLAne : public ::testing::TestWithParam<const char*> {};

TEST_P(CoreMLAne, UnetMatchesDiffusersOnDequantizedWeights) {
  const std::string v = GetParam();
  Golden g("tests/goldens/coreml/tiny_model_ane/" + v + ".safetensors");
  auto m = std::make_shared<const coreml::CoreMLModel>(coreml::load_model(unet_package(v)));
  auto wf = CoreMLWeightFile::open(m);
  const UNetConfig cfg = unet_config_from_coreml(*wf, m->program.main());
  EXPECT_EQ(cfg.block_out_channels, (std::vector<int>{32, 32, 64, 64}));
  EXPECT_EQ(cfg.num_heads, (std::vector<int>{8, 8, 8, 8}));  // from the per-head query slices
  EXPECT_EQ(cfg.norm_num_groups, 8);
  EXPECT_EQ(cfg.cross_attention_dim, 32);
  EXPECT_EQ(cfg.sample_size, 8);
  EXPECT_FALSE(cfg.use_linear_projection);
  // Every linear is a 1x1 conv: the query weight keeps its [out, in, 1, 1] shape.
  const TensorView* q = wf->find("down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q_weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (Shape{32, 32, 1, 1}));
  // 10 transformer blocks x 3 LayerNormANE and 39 GroupNorms, weight and bias each, found through the graph.
  EXPECT_EQ(wf->derived_count(), size_t(2 * (30 + 39)));
  EXPECT_TRUE(wf->is_derived("mid_block_attentions_0_transformer_blocks_0_norm3_bias"));
  // Left unbound: only the timestep embedding's frequency table (not a parameter).
  EXPECT_EQ(wf->anonymous().size(), 1u);

  WeightBinder w("unet", {wf});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kUnet));
  UNet unet(cfg, w);
  EXPECT_NO_THROW(w.finish());
  EXPECT_EQ(w.bound_count(), wf->tensors().size());
  if (v != "fp16") {
    EXPECT_GT(wf->palettized_count(), 0u);
    // The program's first LUT weight as coremltools decodes it (a 1x1 conv weight [128, 32, 1, 1]).
    const TensorView* lut = wf->find("time_embedding_linear_1_weight");
    ASSERT_TRUE(lut && lut->palettized);
    expect_close(to_f32(*lut), g.f32("weights.unet.time_embedding_linear_1_weight_to_fp16_palettized"), 0.0,
                 v + " decoded LUT weight");
  }

  const Tensor sample = nchw_to_nhwc(g.f32("sample")), t = g.f32("timestep");
  const Tensor ctx = apple_context_to_bsc(g.f32("encoder_hidden_states")), want = nchw_to_nhwc(g.f32("noise_pred"));
  const Tensor native = unet.forward(sample, t.f32()[0], ctx);
  expect_close(native, want, 1e-4, v + " native unet");
  // As for the plain programs: the program's fp16 timestep frequencies put the interpreter 2e-3 from
  // diffusers' fp32 embedding even without fp16 rounding of values.
  MilUNet fp32({m}, cfg, exact());
  const Tensor mil = fp32.forward(sample, t.f32()[0], ctx);
  expect_close(mil, want, 5e-3, v + " mil unet (fp32)");
  expect_close(mil, native, 5e-3, v + " mil unet (fp32) vs native");
  MilUNet fp16({m}, cfg);
  const Tensor mil16 = fp16.forward(sample, t.f32()[0], ctx);
  expect_close(mil16, want, 2e-2, v + " mil unet (fp16 rounding)");
  std::printf("[ coreml ane] %s: max |diff| vs golden: native %.3g, mil fp32 %.3g, mil fp16 %.3g\n", v.c_str(),
              max_abs_diff(native, want), max_abs_diff(mil, want), max_abs_diff(mil16, want));
}

INSTANTIATE_TEST_SUITE_P(Variants, CoreMLAne, ::testing::ValuesIn(kVariants));

// coremltools 8.1 fuses LayerNormANE into layer_norm(axes = [1]) when it converts Apple's modules
// (make_coreml_ane.py --fuse-layernorm; Apple's published programs predate that fusion): gamma / beta
// are then constants named after the op's output variable, without a module path, and still belong
// to the transformer block's norm.
TEST(CoreMLAne, FusedLayerNormAneIsTheBlocksNorm) {
  // One LayerNorm feeding a block's query conv, in the form coremlc writes.
  auto op = [](const std::string& type, const std::string& out, const std::string& args) {
    return "            " + type + " " + out + " = " + args + "[name = tensor<string, []>(\"" + out + "\")";
  };
  const std::string gamma = "input_25_gamma_0_to_fp16", beta = "input_25_beta_0_to_fp16", n = "input_25_cast_fp16";
  const std::string q = "down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q_weight_to_fp16";
  const std::string text =
      "program(1.0)\n{\n    func main<ios16>(tensor<fp16, [1, 2, 1, 3]> x) {\n" +
      op("tensor<int32, [1]>", "axes", "const()") + ", val = tensor<int32, [1]>([1])];\n" +
      op("tensor<fp16, [2]>", gamma, "const()") + ", val = tensor<fp16, [2]>([0x1p+1, 0x1.8p-1])];\n" +
      op("tensor<fp16, [2]>", beta, "const()") + ", val = tensor<fp16, [2]>([0x1p-2, -0x1p+0])];\n" +
      op("tensor<fp16, []>", "eps", "const()") + ", val = tensor<fp16, []>(0x1.5p-17)];\n" +
      op("tensor<fp16, [1, 2, 1, 3]>", n,
         "layer_norm(axes = axes, beta = " + beta + ", epsilon = eps, gamma = " + gamma + ", x = x)") + "];\n" +
      op("tensor<fp16, [2, 2, 1, 1]>", q, "const()") + ", val = tensor<fp16, [2, 2, 1, 1]>([1, 0, 0, 1])];\n" +
      op("tensor<fp16, [1, 2, 1, 3]>", "q_1_cast_fp16", "conv(weight = " + q + ", x = " + n + ")") + "];\n" +
      "        } -> (q_1_cast_fp16);\n}\n";
  const std::string dir = ::testing::TempDir() + "/sdpal_coreml_ane_fused_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/model.mil";
  std::ofstream(path) << text;
  auto wf = CoreMLWeightFile::open(path, dir);
  const std::string norm = "down_blocks_0_attentions_0_transformer_blocks_0_norm1";
  ASSERT_NE(wf->find(norm + "_weight"), nullptr);
  EXPECT_TRUE(wf->is_derived(norm + "_bias"));
  EXPECT_EQ(wf->find("input_25_gamma_0"), nullptr);
  const Tensor w = to_f32(*wf->find(norm + "_weight")), b = to_f32(*wf->find(norm + "_bias"));
  EXPECT_EQ(w.f32()[0], 2.f);
  EXPECT_EQ(w.f32()[1], 0.75f);
  EXPECT_EQ(b.f32()[0], 0.25f);
  EXPECT_EQ(b.f32()[1], -1.f);
  EXPECT_EQ(wf->tensors().size(), 3u);  // the query weight and the norm's two
  std::filesystem::remove_all(dir);
}

// The palettized6 resources folder with the ANE UNet, loaded as `sdpal generate -m` loads it, draws
// the plain palettized6 folder's picture (the same text encoder, VAE and UNet weights; the LayerNorm
// biases differ by the fp16 rounding of bias / weight); loaded for `--executor mil`, its UNet is the
// golden's.
TEST(CoreMLAnePipeline, DrawsThePlainFoldersImage) {
  const std::string dir = ane_dir("palettized6");
  ASSERT_TRUE(looks_like_coreml_resources(dir));
  LoadOptions o;
  auto plain = load_model(repo_path("tests/fixtures/tiny-sd-v1-coreml/palettized6"), o);
  auto native = load_model(dir, o);
  EXPECT_EQ(native->default_size(), 64);
  GenerateParams p;
  p.prompt = "a photograph of an astronaut riding a horse";
  p.steps = 3;
  p.seed = 93;
  const GenerateResult a = txt2img(*plain, p), b = txt2img(*native, p);
  ASSERT_EQ(a.images.size(), 1u);
  ASSERT_EQ(a.images[0].pixels.size(), b.images[0].pixels.size());
  int worst = 0;
  for (size_t i = 0; i < a.images[0].pixels.size(); ++i)
    worst = std::max(worst, std::abs(int(a.images[0].pixels[i]) - int(b.images[0].pixels[i])));
  std::printf("[ coreml ane] palettized6 image: ANE vs plain folder max %d levels\n", worst);
  EXPECT_LE(worst, 2);

  o.executor = Executor::kMil;
  auto mil = load_model(dir, o);
  Golden g("tests/goldens/coreml/tiny_model_ane/palettized6.safetensors");
  const Tensor ctx = apple_context_to_bsc(g.f32("encoder_hidden_states"));
  expect_close(mil->unet->forward(nchw_to_nhwc(g.f32("sample")), g.f32("timestep").f32()[0], ctx),
               nchw_to_nhwc(g.f32("noise_pred")), 2e-2, "palettized6 folder, mil unet");
}

}  // namespace
}  // namespace sdpal
