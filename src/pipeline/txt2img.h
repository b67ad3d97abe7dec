// Text-to-image exactly as diffusers' StableDiffusionPipeline does it: classifier-free guidance,
// torch-compatible noise, the chosen scheduler, VAE decode, safety check, uint8 postprocess.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/diffusers_folder.h"
#include "rng/torch_generator.h"
#include "sched/scheduler.h"

namespace sdpal {

struct GenerateParams {
  std::string prompt, negative_prompt;
  int steps = 50;
  float guidance = 7.5f;
  uint64_t seed = 0;
  int width = 0, height = 0;  // 0: the model's default size
  int batch = 1;              // images per prompt, all drawn from one generator as diffusers does
  SamplerOptions sampler;
  bool safety_checker = true;
  RandnPath randn_path = RandnPath::Avx2;
  std::optional<NoiseSource> noise;  // unset: the model's default (torch; numpy for Core ML resources)
};

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // HWC RGB8
};

struct GenerateResult {
  std::vector<RgbImage> images;
  std::vector<bool> nsfw;       // per image; true means the image was replaced by black
  bool safety_checked = false;
  std::string sampler_name;     // the scheduler class actually used
  std::vector<double> timesteps;
};

// Called before the first and after every UNet call; return false to cancel (an Error with
// ErrorCode::kCancelled is then thrown).
using ProgressFn = std::function<bool(int step, int total)>;

// Validates params against the model (names the offending argument).
void validate_params(const StableDiffusionModel& model, GenerateParams& params);

// Optional taps on the intermediate state, for tests (NHWC latents).
struct PipelineTaps {
  std::function<void(const Tensor& initial_latents)> on_initial_latents;
  std::function<void(int step, const Tensor& latents)> on_step_latents;
  std::function<void(const Tensor& text_embeddings)> on_text_embeddings;
};

GenerateResult txt2img(const StableDiffusionModel& model, GenerateParams params, const ProgressFn& progress = {},
                       const PipelineTaps* taps = nullptr);

// Pieces of the pipeline, exposed for tests and the bench command.
Tensor encode_prompts(const StableDiffusionModel& model, const std::vector<std::string>& prompts);
// NCHW <-> NHWC for float tensors of rank 4.
Tensor nchw_to_nhwc(const Tensor& x);
Tensor nhwc_to_nchw(const Tensor& x);
// [-1, 1] NHWC image batch -> uint8 RGB as diffusers postprocesses it ((x/2+0.5).clamp(0,1)*255, round half even).
std::vector<RgbImage> to_rgb8(const Tensor& images);

}  // namespace sdpal
