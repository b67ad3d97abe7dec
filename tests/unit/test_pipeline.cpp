// End-to-end txt2img on the tiny SD v1 fixture against diffusers' StableDiffusionPipeline
// (tests/goldens/pipeline, seed 1234, 10 steps, 128x128, every scheduler).
// Tolerances: initial latents bit-exact; per-step latents within 1e-4 relative to their scale;
// final uint8 images equal or off by at most 1 on >= 99.9 % of values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "golden.h"
#include "io/image_preprocess.h"
#include "model/diffusers_folder.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

using testing::Golden;
using testing::repo_path;

const StableDiffusionModel& tiny() {
  static std::unique_ptr<StableDiffusionModel> m = load_diffusers_folder(repo_path("tests/fixtures/tiny-sd-v1"), {});
  return *m;
}

const nlohmann::json& runs() {
  static nlohmann::json j = [] {
    std::ifstream in(repo_path("tests/goldens/pipeline/runs.json"));
    return nlohmann::json::parse(in);
  }();
  return j;
}

class PipelineGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineGolden, MatchesDiffusers) {
  const std::string run = GetParam();
  const nlohmann::json& r = runs().at(run);
  Golden g("tests/goldens/pipeline/" + run + ".safetensors");

  GenerateParams p;
  p.prompt = r.at("prompt").get<std::string>();
  if (r.contains("negative_prompt") && r["negative_prompt"].is_string())
    p.negative_prompt = r["negative_prompt"].get<std::string>();
  p.steps = r.at("num_inference_steps").get<int>();
  p.guidance = r.at("guidance_scale").get<float>();
  p.seed = r.at("seed").get<uint64_t>();
  p.width = r.at("width").get<int>();
  p.height = r.at("height").get<int>();
  p.batch = r.at("num_images_per_prompt").get<int>();
  p.safety_checker = false;
  std::string cls = r.at("scheduler_class").get<std::string>();
  if (run != "pndm" && run != "pndm_batch2" && run != "pndm_negative") {
    p.sampler.kind = cls == "DDIMScheduler" ? SamplerKind::DDIM
                     : cls == "EulerDiscreteScheduler" ? SamplerKind::Euler
                     : cls == "EulerAncestralDiscreteScheduler" ? SamplerKind::EulerAncestral
                     : cls == "DPMSolverMultistepScheduler" ? SamplerKind::DPMPP2M : SamplerKind::PNDM;
    p.sampler.karras = r.at("scheduler_config").value("use_karras_sigmas", false);
    p.sampler.eta = r.value("eta", 0.0f);
  }

  Tensor steps = g.f32("latents_steps");
  const int64_t per_step = steps.numel() / steps.dim(0);
  Tensor init;
  std::vector<testing::Diff> step_diffs;
  PipelineTaps taps;
  taps.on_initial_latents = [&](const Tensor& l) { init = l.clone(); };
  taps.on_step_latents = [&](int i, const Tensor& l) {
    Tensor want = nchw_to_nhwc(
        Tensor::from_data({steps.dim(1), steps.dim(2), steps.dim(3), steps.dim(4)}, steps.f32() + i * per_step));
    step_diffs.push_back(testing::compare(l.f32(), want.f32(), want.numel()));
  };
  GenerateResult out = txt2img(tiny(), p, {}, &taps);

  // Timesteps: the UNet sees exactly diffusers' sequence.
  std::vector<double> ts;
  if (g.view("timesteps").dtype == DType::I64) {
    for (int64_t t : g.ints("timesteps")) ts.push_back(double(t));
  } else {
    Tensor t = g.f32("timesteps");
    ts.assign(t.f32(), t.f32() + t.numel());
  }
  ASSERT_EQ(out.timesteps.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_FLOAT_EQ(float(out.timesteps[i]), float(ts[i])) << i;

  // Initial noise: bit-exact torch.randn.
  Tensor want_init = nchw_to_nhwc(g.f32("init_latents"));
  ASSERT_EQ(init.numel(), want_init.numel());
  EXPECT_EQ(0, std::memcmp(init.f32(), want_init.f32(), size_t(init.numel()) * 4)) << "initial latents differ";

  ASSERT_EQ(step_diffs.size(), size_t(steps.dim(0)));
  for (size_t i = 0; i < step_diffs.size(); ++i)
    EXPECT_LE(step_diffs[i].rel, 1e-4) << "latents after step " << i << ": max abs error " << step_diffs[i].max_abs;

  std::vector<uint8_t> want = g.u8("image_uint8");
  size_t total = 0, off = 0;
  int max_diff = 0;
  for (size_t k = 0; k < out.images.size(); ++k) {
    const auto& px = out.images[k].pixels;
    for (size_t i = 0; i < px.size(); ++i) {
      int d = std::abs(int(px[i]) - int(want[total + i]));
      off += d != 0;
      max_diff = std::max(max_diff, d);
    }
    total += px.size();
  }
  ASSERT_EQ(total, want.size());
  EXPECT_LE(max_diff, 1) << run;
  EXPECT_LE(double(off) / double(total), 0.001) << run << ": " << off << " of " << total << " values differ";

  // The safety checker's verdict on these images matches the reference run with the checker on.
  const auto& flags = r.at("has_nsfw");
  for (size_t k = 0; k < out.images.size(); ++k) {
    const RgbImage& im = out.images[k];
    Tensor px = clip_preprocess(im.pixels.data(), im.width, im.height, tiny().feature_extractor);
    EXPECT_EQ(tiny().safety_checker->check(px)[0].nsfw, flags[k].get<bool>()) << run << " image " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(AllSchedulers, PipelineGolden,
                         ::testing::Values("pndm", "ddim_eta0", "ddim_eta0_5", "euler", "euler_ancestral", "dpmpp_2m",
                                           "dpmpp_2m_karras", "pndm_batch2", "pndm_negative"));

TEST(Pipeline, FlaggedImagesAreBlackedOut) {
  GenerateParams p;
  const nlohmann::json& r = runs().at("pndm_batch2");
  p.prompt = r.at("prompt").get<std::string>();
  p.steps = 10;
  p.seed = 1234;
  p.batch = 2;
  GenerateResult out = txt2img(tiny(), p);
  ASSERT_TRUE(out.safety_checked);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(out.nsfw[k], r.at("has_nsfw")[k].get<bool>());
    bool all_black = std::all_of(out.images[k].pixels.begin(), out.images[k].pixels.end(), [](uint8_t v) { return v == 0; });
    EXPECT_EQ(all_black, out.nsfw[k]);
  }
}

TEST(Pipeline, RejectsBadParameters) {
  auto expect_invalid = [](GenerateParams p, const std::string& needle) {
    p.prompt = "x";
    try {
      GenerateParams q = p;
      validate_params(tiny(), q);
      ADD_FAILURE() << "accepted bad params: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  GenerateParams p;
  p.steps = 0; expect_invalid(p, "steps"); p.steps = 10;
  p.guidance = NAN; expect_invalid(p, "cfg"); p.guidance = INFINITY; expect_invalid(p, "cfg"); p.guidance = 7.5f;
  p.width = 100; expect_invalid(p, "multiple"); p.width = 128;
  p.height = 1 << 20; expect_invalid(p, "4096"); p.height = 128;
  p.batch = 0; expect_invalid(p, "batch");
}

TEST(Pipeline, ProgressCallbackCanCancel) {
  GenerateParams p;
  p.prompt = "cancel me";
  p.steps = 5;
  int calls = 0;
  try {
    txt2img(tiny(), p, [&](int step, int) { ++calls; return step < 2; });
    ADD_FAILURE() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
  }
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace sdpal
