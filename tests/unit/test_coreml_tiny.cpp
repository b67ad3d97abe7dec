// The tiny test model converted by coremltools (tests/fixtures/tiny-sd-v1-coreml, made by
// tests/reference/make_coreml_tiny.py): fp16 and 4/6/8-bit palettized `.mlpackage`s in Apple's
// Python `packages/` layout. Both executors match diffusers run on the programs' dequantized
// weights (tests/goldens/coreml/tiny_model): the native modules bound to the packed weights, and
// the MIL interpreter (exactly without fp16 rounding; within fp16 error with it, as Core ML runs).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

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
namespace fs = std::filesystem;

const char* kVariants[] = {"fp16", "palettized4", "palettized6", "palettized8"};

std::string package(const std::string& variant, const std::string& part) {
  return repo_path("tests/fixtures/tiny-sd-v1-coreml/" + variant + "/Stable_Diffusion_version_tiny-sd-v1_" + part +
                   ".mlpackage");
}

std::shared_ptr<const coreml::CoreMLModel> open(const std::string& path) {
  return std::make_shared<const coreml::CoreMLModel>(coreml::load_model(path));
}

// NCHW golden -> NHWC, and back.
Tensor to_nhwc(const Tensor& x) { return nchw_to_nhwc(x); }

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> ids(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) ids[size_t(i)] = int32_t(t.f32()[i]);
  return ids;
}

mil::InterpreterOptions exact() {
  mil::InterpreterOptions o;
  o.fp16_rounding = false;
  return o;
}

class CoreMLTiny : public ::testing::TestWithParam<const char*> {};

TEST_P(CoreMLTiny, UnetMatchesDiffusersOnDequantizedWeights) {
  const std::string v = GetParam();
  Golden g("tests/goldens/coreml/tiny_model/" + v + ".safetensors");
  auto m = open(package(v, "unet"));
  auto wf = CoreMLWeightFile::open(m);
  const UNetConfig cfg = unet_config_from_coreml(*wf, m->program.main());
  EXPECT_EQ(cfg.block_out_channels, (std::vector<int>{32, 32, 64, 64}));
  EXPECT_EQ(cfg.norm_num_groups, 8);
  EXPECT_EQ(cfg.cross_attention_dim, 32);
  EXPECT_EQ(cfg.sample_size, 8);
  WeightBinder w("unet", {wf});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kUnet));
  UNet unet(cfg, w);
  EXPECT_NO_THROW(w.finish());
  EXPECT_EQ(w.bound_count(), wf->tensors().size());
  if (v != "fp16") {
    EXPECT_GT(wf->palettized_count(), 0u);
  }

  const Tensor sample = g.f32("sample"), t = g.f32("timestep"), ehs = g.f32("encoder_hidden_states");
  const Tensor ctx = apple_context_to_bsc(ehs), want = to_nhwc(g.f32("noise_pred"));
  const Tensor native = unet.forward(to_nhwc(sample), t.f32()[0], ctx);
  expect_close(native, want, 1e-4, v + " native unet");
  // The program holds its timestep frequencies as fp16 constants (converted with FLOAT16 compute
  // precision): even without fp16 rounding of values it is 2e-3 from diffusers' fp32 embedding.
  MilUNet fp32({m}, cfg, exact());
  expect_close(fp32.forward(to_nhwc(sample), t.f32()[0], ctx), want, 5e-3, v + " mil unet (fp32)");
  MilUNet fp16({m}, cfg);
  expect_close(fp16.forward(to_nhwc(sample), t.f32()[0], ctx), want, 2e-2, v + " mil unet (fp16 rounding)");
}

TEST_P(CoreMLTiny, VaeDecoderMatchesDiffusersOnDequantizedWeights) {
  const std::string v = GetParam();
  Golden g("tests/goldens/coreml/tiny_model/" + v + ".safetensors");
  auto m = open(package(v, "vae_decoder"));
  auto wf = CoreMLWeightFile::open(m);
  const VaeConfig cfg = vae_decoder_config_from_coreml(*wf);
  EXPECT_EQ(cfg.block_out_channels, (std::vector<int>{16, 32, 32, 32}));
  WeightBinder w("vae", {wf});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kVaeDecoder));
  VaeDecoder vae(cfg, w);
  EXPECT_NO_THROW(w.finish());
  EXPECT_EQ(w.bound_count(), wf->tensors().size());
  const Tensor z = to_nhwc(g.f32("z")), want = to_nhwc(g.f32("image"));
  // Both executors compute the program's function (1e-4 apart), which is 2.3e-4 from the golden in
  // every variant (the program's fp16 constants: small biases stored inline, epsilons).
  const Tensor native = vae.forward(z);
  expect_close(native, want, 1e-3, v + " native vae");
  MilVaeDecoder fp32(m, cfg, exact());
  expect_close(fp32.forward(z), native, 1e-4, v + " mil vae (fp32) vs native");
  MilVaeDecoder fp16(m, cfg);
  expect_close(fp16.forward(z), want, 2e-2, v + " mil vae (fp16 rounding)");
}

TEST_P(CoreMLTiny, TextEncoderMatchesDiffusersOnDequantizedWeights) {
  const std::string v = GetParam();
  if (!fs::exists(package(v, "text_encoder"))) GTEST_SKIP() << v << " has no text encoder (fixture size)";
  Golden g("tests/goldens/coreml/tiny_model/" + v + ".safetensors");
  auto m = open(package(v, "text_encoder"));
  auto wf = CoreMLWeightFile::open(m);
  const ClipTextConfig cfg = clip_text_config_from_coreml(*wf, m->program.main());
  EXPECT_EQ(cfg.act, Activation::QuickGelu);
  WeightBinder w("text_encoder", {wf});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kTextEncoder));
  ClipTextEncoder te(cfg, w);
  EXPECT_NO_THROW(w.finish());
  const auto ids = ids_of(g.f32("input_ids"));
  const Tensor want = g.f32("last_hidden_state");
  expect_close(te.forward(ids, 1), want, 1e-4, v + " native text encoder");
  MilTextEncoder fp32(m, cfg, exact());
  expect_close(fp32.forward(ids, 1), want, 1e-4, v + " mil text encoder (fp32)");
}

INSTANTIATE_TEST_SUITE_P(Variants, CoreMLTiny, ::testing::ValuesIn(kVariants));

// Apple's chunked UNet (UnetChunk1 feeds UnetChunk2 by variable name; made by
// tests/reference/make_coreml_tiny_chunks.py from the palettized6 UNet): both executors reproduce
// the unchunked program's golden.
TEST(CoreMLTinyChunks, ChunkedUnetMatchesTheWholeOne) {
  const std::string dir = repo_path("tests/fixtures/tiny-sd-v1-coreml/palettized6-chunked");
  Golden g("tests/goldens/coreml/tiny_model/palettized6.safetensors");
  const Tensor sample = to_nhwc(g.f32("sample")), t = g.f32("timestep");
  const Tensor ctx = apple_context_to_bsc(g.f32("encoder_hidden_states")), want = to_nhwc(g.f32("noise_pred"));
  LoadOptions o;
  auto native = load_model(dir, o);
  expect_close(native->unet->forward(sample, t.f32()[0], ctx), want, 1e-4, "chunked native unet");
  o.executor = Executor::kMil;
  auto mil = load_model(dir, o);
  expect_close(mil->unet->forward(sample, t.f32()[0], ctx), want, 2e-2, "chunked mil unet (fp16 rounding)");
}

// The whole pipeline from a variant folder, as `sdpal generate -m` loads it: both executors draw
// the same picture (numpy noise, Apple's default).
TEST(CoreMLTinyPipeline, NativeAndInterpreterDrawTheSameImage) {
  for (const char* v : {"palettized6"}) {
    const std::string dir = repo_path(std::string("tests/fixtures/tiny-sd-v1-coreml/") + v);
    ASSERT_TRUE(looks_like_coreml_resources(dir));
    LoadOptions o;
    auto native = load_model(dir, o);
    o.executor = Executor::kMil;
    auto mil = load_model(dir, o);
    EXPECT_EQ(native->default_size(), 64);
    GenerateParams p;
    p.prompt = "a photograph of an astronaut riding a horse";
    p.steps = 3;
    p.seed = 93;
    const GenerateResult a = txt2img(*native, p), b = txt2img(*mil, p);
    ASSERT_EQ(a.images.size(), 1u);
    ASSERT_EQ(a.images[0].pixels.size(), b.images[0].pixels.size());
    double se = 0;
    for (size_t i = 0; i < a.images[0].pixels.size(); ++i) {
      const double d = double(a.images[0].pixels[i]) - double(b.images[0].pixels[i]);
      se += d * d;
    }
    const double mse = se / double(a.images[0].pixels.size());
    const double psnr = mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
    std::printf("[ coreml   ] %s: native vs mil image PSNR %.1f dB\n", v, psnr);
    EXPECT_GE(psnr, 30.0) << v;
  }
}

}  // namespace
}  // namespace sdpal
