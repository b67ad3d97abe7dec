// The two ways sdpal runs Apple's Core ML resources check each other: the native modules bound to
// the programs' constants (`--executor native`) and the MIL interpreter running the programs as
// written (`--executor mil`), on the real SD 2.1-base programs of the shared fixtures with
// plausible synthetic weights (tests/support/coreml_synthetic.h), loaded through the same
// `load_model` the command uses.
//
// The text encoder always runs (seconds). The UNet (original and split_einsum_v2) and the VAE
// decoder take minutes in the interpreter: they run with SDPAL_MIL_REAL=all.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "coreml_synthetic.h"
#include "io/coreml/model_folder.h"
#include "model/coreml_mil_networks.h"
#include "model/coreml_resources.h"
#include "model/diffusers_folder.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

namespace fs = std::filesystem;
const std::string kFixtures = std::string(SDPAL_SOURCE_DIR) + "/../shared/fixtures/coreml/sd21-base-palettized/";

std::string scratch_root() { return ::testing::TempDir() + "/sdpal_coreml_exec_" + std::to_string(::getpid()); }
struct ScratchCleanup : ::testing::Environment {
  void TearDown() override { fs::remove_all(scratch_root()); }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

bool slow_selected() {
  const char* env = std::getenv("SDPAL_MIL_REAL");
  return env && std::string(env) == "all";
}

// A resources folder with `unet_variant`'s UNet ("original" or "split_einsum_v2"), made once.
const std::string& resources(const std::string& unet_variant) {
  static std::map<std::string, std::string> made;
  auto it = made.find(unet_variant);
  if (it != made.end()) return it->second;
  const std::string dir = scratch_root() + "/" + unet_variant;
  testing::make_sd_resources(kFixtures + "original/compiled", dir, {"TextEncoder", "VAEDecoder"});
  const std::string unet_dir = scratch_root() + "/unet_" + unet_variant;
  testing::make_sd_resources(kFixtures + unet_variant + "/compiled", unet_dir, {"Unet"});
  fs::rename(unet_dir + "/Unet.mlmodelc", dir + "/Unet.mlmodelc");
  return made[unet_variant] = dir;
}

std::unique_ptr<StableDiffusionModel> load(const std::string& dir, Executor ex) {
  LoadOptions o;
  o.executor = ex;
  return load_model(dir, o);
}

// max |a - b| relative to max |a|.
double rel_err(const Tensor& a, const Tensor& b, const char* what) {
  EXPECT_EQ(a.shape(), b.shape()) << what;
  double err = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    err = std::max(err, double(std::fabs(a.f32()[i] - b.f32()[i])));
    scale = std::max(scale, double(std::fabs(a.f32()[i])));
  }
  std::printf("[ executors] %s: native vs mil max |diff| %.3g, max |v| %.3g\n", what, err, scale);
  EXPECT_GT(scale, 0.0) << what;
  return scale > 0 ? err / scale : 1.0;
}

TEST(CoreMLExecutors, LoadsAppleResourcesWithBothExecutors) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  const std::string& dir = resources("original");
  EXPECT_TRUE(looks_like_coreml_resources(dir));
  EXPECT_FALSE(looks_like_coreml_resources(std::string(SDPAL_SOURCE_DIR) + "/tests/fixtures/tiny-sd-v1"));
  auto native = load(dir, Executor::kNative);
  EXPECT_EQ(native->format, "coreml");
  EXPECT_EQ(native->default_noise, NoiseSource::kNumpy);
  EXPECT_EQ(native->unet->config().cross_attention_dim, 1024);
  EXPECT_EQ(native->text_encoder->config().num_layers, 23);
  EXPECT_EQ(native->default_size(), 512);
  auto mil = load(dir, Executor::kMil);
  EXPECT_EQ(mil->unet->config().sample_size, 64);
  // Apple's tokenizer conventions: SD v1 special tokens, "<|endoftext|>" padding.
  const auto ids = native->tokenizer->encode_padded("a photo of an astronaut");
  EXPECT_EQ(ids.front(), 49406);
  EXPECT_EQ(ids.back(), 49407);
}

TEST(CoreMLExecutors, TextEncoderNativeMatchesInterpreter) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  const std::string& dir = resources("original");
  auto native = load(dir, Executor::kNative);
  auto mil = load(dir, Executor::kMil);
  const auto ids = native->tokenizer->encode_padded("a photograph of an astronaut riding a horse");
  const Tensor a = native->text_encoder->forward(ids, 1);
  const Tensor b = mil->text_encoder->forward(ids, 1);
  // The interpreter rounds every value to fp16 between ops, as Core ML does; native computes in
  // fp32 on the same fp16 weights.
  EXPECT_LE(rel_err(a, b, "TextEncoder last_hidden_state"), 0.01);
  // Without that rounding the two compute the same function in fp32.
  coreml::SDCoreMLResources r = coreml::find_sd_resources(dir);
  auto te = std::make_shared<const coreml::CoreMLModel>(coreml::load_model(r.tree, *r.text_encoder));
  mil::InterpreterOptions exact;
  exact.fp16_rounding = false;
  MilTextEncoder fp32(te, native->text_encoder->config(), exact);
  EXPECT_LE(rel_err(a, fp32.forward(ids, 1), "TextEncoder last_hidden_state (interpreter without fp16 rounding)"), 1e-4);
}

void compare_unet_and_vae(const std::string& variant) {
  const std::string& dir = resources(variant);
  auto native = load(dir, Executor::kNative);
  auto mil = load(dir, Executor::kMil);
  std::mt19937 g(7);
  std::normal_distribution<float> nd;
  Tensor x = Tensor::empty({2, 64, 64, 4}), ctx = Tensor::empty({2, 77, 1024}), z = Tensor::empty({1, 64, 64, 4});
  for (Tensor* t : {&x, &ctx, &z})
    for (int64_t i = 0; i < t->numel(); ++i) t->f32()[i] = nd(g);
  const Tensor pred = native->unet->forward(x, 981.f, ctx);
  EXPECT_LE(rel_err(pred, mil->unet->forward(x, 981.f, ctx), ("Unet " + variant).c_str()), 0.02);
  {
    coreml::SDCoreMLResources r = coreml::find_sd_resources(dir);
    auto um = std::make_shared<const coreml::CoreMLModel>(coreml::load_model(r.tree, *r.unet));
    mil::InterpreterOptions exact;
    exact.fp16_rounding = false;
    MilUNet fp32({um}, native->unet->config(), exact);
    // The program's timestep frequencies are fp16 constants (their rounding shifts the embedding's
    // phase by up to t * 5e-4): compared at t = 0, where sin and cos do not depend on them, the two compute the
    // same function in fp32.
    EXPECT_LE(rel_err(native->unet->forward(x, 0.f, ctx), fp32.forward(x, 0.f, ctx),
                      ("Unet " + variant + " at t=0 (interpreter without fp16 rounding)").c_str()),
              1e-4);
  }
  if (variant == "original") {
    const Tensor img = native->vae->forward(z);
    EXPECT_LE(rel_err(img, mil->vae->forward(z), "VAEDecoder"), 0.02);
    coreml::SDCoreMLResources r = coreml::find_sd_resources(dir);
    auto vm = std::make_shared<const coreml::CoreMLModel>(coreml::load_model(r.tree, *r.vae_decoder));
    mil::InterpreterOptions exact;
    exact.fp16_rounding = false;
    MilVaeDecoder fp32(vm, native->vae->config(), exact);
    EXPECT_LE(rel_err(img, fp32.forward(z), "VAEDecoder (interpreter without fp16 rounding)"), 1e-4);
  }
}

TEST(CoreMLExecutors, UnetAndVaeNativeMatchInterpreterOriginal) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  if (!slow_selected()) GTEST_SKIP() << "minutes in the interpreter: set SDPAL_MIL_REAL=all to run it";
  compare_unet_and_vae("original");
}

TEST(CoreMLExecutors, UnetNativeMatchesInterpreterSplitEinsum) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  if (!slow_selected()) GTEST_SKIP() << "minutes in the interpreter: set SDPAL_MIL_REAL=all to run it";
  compare_unet_and_vae("split_einsum_v2");
}

}  // namespace
}  // namespace sdpal
