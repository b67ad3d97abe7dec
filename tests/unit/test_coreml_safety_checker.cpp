// Apple's SafetyChecker program, as torch2coreml.py converts it, made from the tiny model's checker by
// tests/reference/make_coreml_safety_checker.py (fp16 and 6-bit palettized, in the tiny Core ML
// resources folders). Both executors match diffusers' checker run on the program's weights
// (tests/goldens/coreml/tiny_model/safety_checker.safetensors): the native SafetyChecker bound to the
// program's named weights plus the constants coremltools folded (found through the graph), and the
// MIL interpreter running the program's score outputs. The golden's first image is flagged, the
// second is not.
//
// Tolerances: scores are reported rounded to 3 decimals (as diffusers does), so native scores are
// within 0.0005 + fp32 noise of the unrounded golden (2e-3 allowed); the interpreter rounds every
// value to fp16 between ops, as Core ML does: 3e-3 (measured 6e-4).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "golden.h"
#include "io/coreml/model_folder.h"
#include "mil/interpreter.h"
#include "model/coreml_resources.h"
#include "model/coreml_safety_checker.h"
#include "model/coreml_weights.h"

namespace sdpal {
namespace {

using testing::expect_close;
using testing::Golden;
using testing::repo_path;

constexpr double kMilTol = 3e-3;  // measured 6e-4 (rounding to 3 decimals included)

std::string folder(const std::string& variant) { return repo_path("tests/fixtures/tiny-sd-v1-coreml/" + variant); }

std::string package(const std::string& variant) {
  return folder(variant) + "/Stable_Diffusion_version_tiny-sd-v1_safety_checker.mlpackage";
}

const Golden& golden() {
  static const Golden g("tests/goldens/coreml/tiny_model/safety_checker.safetensors");
  return g;
}

std::unique_ptr<StableDiffusionModel> load(const std::string& variant, Executor executor) {
  LoadOptions o;
  o.executor = executor;
  return load_coreml_resources(folder(variant), o);
}

void expect_scores(const std::vector<SafetyResult>& got, const std::string& variant, double tol, bool specials) {
  const Tensor concepts = golden().f32(variant + ".concept_scores");  // [2, 17]
  const Tensor special = golden().f32(variant + ".special_scores");   // [2, 3]
  const Tensor flags = golden().f32(variant + ".has_nsfw");
  ASSERT_EQ(got.size(), 2u);
  for (int64_t i = 0; i < 2; ++i) {
    const SafetyResult& r = got[size_t(i)];
    EXPECT_EQ(r.nsfw, flags.f32()[i] > 0.5f) << variant << " image " << i;
    ASSERT_EQ(int64_t(r.concept_scores.size()), concepts.dim(1));
    for (int64_t k = 0; k < concepts.dim(1); ++k)
      EXPECT_NEAR(r.concept_scores[size_t(k)], concepts.f32()[i * concepts.dim(1) + k], tol)
          << variant << " image " << i << " concept " << k;
    if (!specials) continue;
    ASSERT_EQ(int64_t(r.special_scores.size()), special.dim(1));
    for (int64_t k = 0; k < special.dim(1); ++k)
      EXPECT_NEAR(r.special_scores[size_t(k)], special.f32()[i * special.dim(1) + k], tol)
          << variant << " image " << i << " special " << k;
  }
}

TEST(CoreMLSafetyChecker, ConfigIsReadOffTheProgram) {
  auto model = std::make_shared<const coreml::CoreMLModel>(coreml::load_model(package("fp16")));
  auto wf = CoreMLWeightFile::open(model);
  const ClipVisionConfig c = safety_checker_config_from_coreml(*wf, *model);
  // tests/fixtures/tiny-sd-v1/safety_checker/config.json: vision_config.
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 37);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.image_size, 224);
  EXPECT_EQ(c.patch_size, 32);
  EXPECT_EQ(c.projection_dim, 32);
  EXPECT_EQ(c.act, Activation::QuickGelu);
  EXPECT_NEAR(c.layer_norm_eps, 1e-5, 1e-7);
  // The folded constants: class and position embeddings, 17 concepts and 3 special-care ones.
  auto folded = safety_checker_folded_constants(*model, c);
  ASSERT_NE(folded->find("concept_embeds"), nullptr);
  EXPECT_EQ(folded->find("concept_embeds")->shape, (Shape{17, 32}));
  EXPECT_EQ(folded->find("special_care_embeds_weights")->shape, (Shape{3}));
  EXPECT_EQ(folded->find("vision_model_vision_model_embeddings_position_embedding_weight")->shape, (Shape{50, 32}));
}

TEST(CoreMLSafetyChecker, NativeMatchesDiffusers) {
  const Tensor pixels = golden().f32("pixels");  // [2, 224, 224, 3]
  for (const char* variant : {"fp16", "palettized6"}) {
    auto model = load(variant, Executor::kNative);
    ASSERT_NE(model->safety_checker, nullptr) << variant;
    EXPECT_TRUE(model->warnings.empty()) << model->warnings.front();
    expect_scores(model->safety_checker->check(pixels), variant, 2e-3, true);
    expect_close(model->safety_checker->image_embeds(pixels), golden().f32(std::string(variant) + ".image_embeds"),
                 1e-4, std::string(variant) + " image embeds");
    EXPECT_EQ(model->feature_extractor.crop_height, 224);
  }
}

TEST(CoreMLSafetyChecker, InterpreterMatchesDiffusers) {
  const Tensor pixels = golden().f32("pixels");
  for (const char* variant : {"fp16", "palettized6"}) {
    auto model = load(variant, Executor::kMil);
    ASSERT_NE(model->safety_checker, nullptr) << variant;
    expect_scores(model->safety_checker->check(pixels), variant, kMilTol, true);
    expect_close(model->safety_checker->image_embeds(pixels), golden().f32(std::string(variant) + ".image_embeds"),
                 1e-2, std::string(variant) + " image embeds (MIL)");
  }
}

TEST(CoreMLSafetyChecker, TurnedOffMeansNotLoaded) {
  LoadOptions o;
  o.safety_checker = false;
  EXPECT_EQ(load_coreml_resources(folder("fp16"), o)->safety_checker, nullptr);
}

// The program's image-zeroing branch uses ops the interpreter does not implement (non_zero,
// scatter_nd): asking for the scores only never reaches them; asking for everything names them.
TEST(CoreMLSafetyChecker, InterpreterRunsOnlyWhatTheWantedOutputsNeed) {
  const coreml::CoreMLModel model = coreml::load_model(package("fp16"));
  try {
    mil::Interpreter all(model);
    FAIL() << "expected an unsupported-op error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("non_zero"), std::string::npos) << e.what();
  }
  mil::InterpreterOptions o;
  o.outputs = {"concept_scores"};
  mil::Interpreter scores(model, o);
  const Tensor pixels = golden().f32("pixels");
  Tensor clip = Tensor::empty({1, 3, 224, 224});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 224 * 224; ++i) clip.f32()[c * 224 * 224 + i] = pixels.f32()[i * 3 + c];
  auto out = scores.run({{"clip_input", clip}, {"images", Tensor::zeros({1, 64, 64, 3})}, {"adjustment", Tensor::zeros({1})}});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out.count("concept_scores"));
  const Tensor want = golden().f32("fp16.concept_scores");
  for (int64_t k = 0; k < 17; ++k) EXPECT_NEAR(out["concept_scores"].f32()[k], want.f32()[k], 2e-2) << k;

  o.outputs = {"no_such_output"};
  try {
    mil::Interpreter bad(model, o);
    FAIL() << "expected an error for an unknown output";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("no_such_output"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sdpal
