// The networks of the tiny SD v1 fixture against diffusers/transformers goldens
// (tests/goldens/model, made by tests/reference/make_model_goldens.py).
// Tolerance: fp32 outputs within 1e-4 of the reference, relative to the reference's max magnitude.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.h"
#include "io/image_preprocess.h"
#include "model/diffusers_folder.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

using testing::Golden;
using testing::expect_close;
using testing::repo_path;
constexpr double kTol = 1e-4;

const StableDiffusionModel& tiny(const std::string& variant = "") {
  static std::map<std::string, std::unique_ptr<StableDiffusionModel>> cache;
  auto& m = cache[variant];
  if (!m) {
    LoadOptions o;
    o.variant = variant;
    m = load_diffusers_folder(repo_path("tests/fixtures/tiny-sd-v1"), o);
  }
  return *m;
}

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return std::vector<int32_t>(v.begin(), v.end()); }

TEST(TextEncoder, MatchesTransformers) {
  Golden g("tests/goldens/model/text_encoder.safetensors");
  std::vector<int32_t> ids = to_i32(g.ints("input_ids"));
  Tensor out = tiny().text_encoder->forward(ids, int64_t(ids.size() / 77));
  expect_close(out, g.f32("last_hidden_state"), kTol, "last_hidden_state");
}

TEST(TextEncoder, TokenizerProducesTheGoldenIds) {
  Golden g("tests/goldens/model/text_encoder.safetensors");
  std::ifstream in(repo_path("tests/goldens/model/text_encoder.json"));
  nlohmann::json j = nlohmann::json::parse(in);
  std::vector<int64_t> ids = g.ints("input_ids");
  const auto& prompts = j.at("prompts");
  ASSERT_EQ(prompts.size() * 77, ids.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> got = tiny().tokenizer->encode_padded(prompts[i].get<std::string>());
    std::vector<int32_t> want(ids.begin() + long(i * 77), ids.begin() + long((i + 1) * 77));
    EXPECT_EQ(got, want) << "prompt " << i << ": " << prompts[i];
  }
}

TEST(TextEncoder, Fp16VariantWeights) {
  Golden g("tests/goldens/model/text_encoder.safetensors");
  std::vector<int64_t> all = g.ints("input_ids");
  std::vector<int32_t> ids(all.begin() + 77, all.begin() + 154);
  Tensor out = tiny("fp16").text_encoder->forward(ids, 1);
  expect_close(out, g.f32("last_hidden_state_fp16_weights"), kTol, "fp16 weights");
}

TEST(UNet, MatchesDiffusersAtIntegerAndFractionalTimesteps) {
  Golden g("tests/goldens/model/unet.safetensors");
  Tensor sample = nchw_to_nhwc(g.f32("sample"));
  Tensor ctx = g.f32("encoder_hidden_states");
  Tensor out = tiny().unet->forward(sample, 981.f, ctx);
  expect_close(out, nchw_to_nhwc(g.f32("noise_pred_t981")), kTol, "noise_pred t=981");
  out = tiny().unet->forward(sample, 500.25f, ctx);
  expect_close(out, nchw_to_nhwc(g.f32("noise_pred_t500_25")), kTol, "noise_pred t=500.25");
}

TEST(UNet, Fp16VariantWeights) {
  Golden g("tests/goldens/model/unet.safetensors");
  Tensor out = tiny("fp16").unet->forward(nchw_to_nhwc(g.f32("sample")), 981.f, g.f32("encoder_hidden_states"));
  expect_close(out, nchw_to_nhwc(g.f32("noise_pred_t981_fp16_weights")), kTol, "fp16 weights");
}

TEST(Vae, DecodeMatchesDiffusers) {
  Golden g("tests/goldens/model/vae_decode.safetensors");
  Tensor img = tiny().vae->forward(nchw_to_nhwc(g.f32("scaled_latents")));
  expect_close(img, nchw_to_nhwc(g.f32("image")), kTol, "decoded image");
  std::vector<RgbImage> rgb = to_rgb8(img);
  std::vector<uint8_t> want = g.u8("image_uint8");
  ASSERT_EQ(rgb[0].pixels.size(), want.size());
  size_t off = 0;
  int max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    int d = std::abs(int(rgb[0].pixels[i]) - int(want[i]));
    off += d != 0;
    max_diff = std::max(max_diff, d);
  }
  EXPECT_LE(max_diff, 1);
  EXPECT_LE(double(off) / double(want.size()), 0.001) << off << " values differ";
}

TEST(SafetyChecker, PreprocessEmbeddingsScoresAndFlags) {
  Golden g("tests/goldens/model/safety_checker.safetensors");
  const StableDiffusionModel& m = tiny();
  ASSERT_TRUE(m.safety_checker != nullptr);
  Tensor want_pixels = nchw_to_nhwc(g.f32("pixel_values"));
  Tensor want_embeds = g.f32("image_embeds");
  std::vector<double> special = [&] { Tensor t = g.f32("special_scores"); return std::vector<double>(t.f32(), t.f32() + t.numel()); }();
  std::vector<double> concept_scores = [&] { Tensor t = g.f32("concept_scores"); return std::vector<double>(t.f32(), t.f32() + t.numel()); }();
  std::vector<int64_t> flags = g.ints("has_nsfw");
  for (int i = 0; i < 3; ++i) {
    const TensorView& img = g.view("image_" + std::to_string(i));
    int h = int(img.shape[0]), w = int(img.shape[1]);
    Tensor px = clip_preprocess(img.data, w, h, m.feature_extractor);
    Tensor want_px = want_pixels.slice0(i, i + 1).clone();
    expect_close(px, want_px, 1e-6, "pixel_values " + std::to_string(i));
    Tensor emb = m.safety_checker->image_embeds(px);
    Tensor want_emb = want_embeds.slice0(i, i + 1).clone();
    expect_close(emb, want_emb, kTol, "image_embeds " + std::to_string(i));
    SafetyResult r = m.safety_checker->check(px)[0];
    EXPECT_EQ(r.nsfw, flags[size_t(i)] != 0) << "image " << i;
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(r.special_scores[size_t(k)], special[size_t(i * 3 + k)], 1.5e-3);
    for (int k = 0; k < 17; ++k) EXPECT_NEAR(r.concept_scores[size_t(k)], concept_scores[size_t(i * 17 + k)], 1.5e-3);
  }
}

}  // namespace
}  // namespace sdpal
