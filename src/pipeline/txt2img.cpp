#include "pipeline/txt2img.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"
#include "rng/cuda_philox.h"
#include "rng/numpy_random.h"

namespace sdpal {

Tensor nchw_to_nhwc(const Tensor& x) {
  int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  Tensor y = Tensor::empty({n, h, w, c});
  const float* s = x.f32();
  float* d = y.f32();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < h * w; ++i) d[(b * h * w + i) * c + ch] = s[(b * c + ch) * h * w + i];
  return y;
}

Tensor nhwc_to_nchw(const Tensor& x) {
  int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor y = Tensor::empty({n, c, h, w});
  const float* s = x.f32();
  float* d = y.f32();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < h * w; ++i) d[(b * c + ch) * h * w + i] = s[(b * h * w + i) * c + ch];
  return y;
}

std::vector<RgbImage> to_rgb8(const Tensor& images) {
  int64_t n = images.dim(0), h = images.dim(1), w = images.dim(2);
  check(images.dim(3) == 3, ErrorCode::kInternal, "to_rgb8: expected 3 channels");
  std::vector<RgbImage> out(static_cast<size_t>(n));
  const float* p = images.f32();
  for (int64_t b = 0; b < n; ++b) {
    RgbImage& img = out[size_t(b)];
    img.width = int(w);
    img.height = int(h);
    img.pixels.resize(size_t(h * w * 3));
    for (int64_t i = 0; i < h * w * 3; ++i) {
      float v = p[b * h * w * 3 + i] / 2.f + 0.5f;
      v = std::min(std::max(v, 0.f), 1.f);
      img.pixels[size_t(i)] = uint8_t(std::nearbyint(v * 255.f));  // numpy's round: half to even
    }
  }
  return out;
}

void validate_params(const StableDiffusionModel& model, GenerateParams& p) {
  const int f = model.vae_scale_factor() * (1 << (int(model.unet->config().block_out_channels.size()) - 1));
  if (p.width == 0) p.width = model.default_size();
  if (p.height == 0) p.height = model.default_size();
  check(p.steps >= 1 && p.steps <= 1000, ErrorCode::kInvalidArgument,
        "--steps must be between 1 and 1000 (got " + std::to_string(p.steps) + ")");
  check(std::isfinite(p.guidance), ErrorCode::kInvalidArgument, "--cfg must be a finite number");
  check(p.guidance >= 0.f && p.guidance <= 100.f, ErrorCode::kInvalidArgument, "--cfg must be between 0 and 100");
  check(p.width > 0 && p.height > 0 && p.width % 8 == 0 && p.height % 8 == 0, ErrorCode::kInvalidArgument,
        "width and height must be positive multiples of 8 (got " + std::to_string(p.width) + "x" +
            std::to_string(p.height) + ")");
  check(p.width % f == 0 && p.height % f == 0, ErrorCode::kInvalidArgument,
        "width and height must be multiples of " + std::to_string(f) + " for this model");
  check(p.width <= 4096 && p.height <= 4096, ErrorCode::kInvalidArgument,
        "width and height must be at most 4096 (got " + std::to_string(p.width) + "x" + std::to_string(p.height) + ")");
  check(p.batch >= 1 && p.batch <= 64, ErrorCode::kInvalidArgument, "--batch must be between 1 and 64");
  if (p.noise.value_or(model.default_noise) == NoiseSource::kNumpy)
    check(p.seed <= 0xffffffffull, ErrorCode::kInvalidArgument, "--seed must be below 2^32 with --rng numpy (numpy's limit)");
  check(std::isfinite(p.sampler.eta) && p.sampler.eta >= 0.f && p.sampler.eta <= 10.f, ErrorCode::kInvalidArgument,
        "--eta must be between 0 and 10");
}

Tensor encode_prompts(const StableDiffusionModel& model, const std::vector<std::string>& prompts) {
  std::vector<int32_t> ids;
  for (const auto& p : prompts) {
    std::vector<int32_t> one = model.tokenizer->encode_padded(p);
    ids.insert(ids.end(), one.begin(), one.end());
  }
  return model.text_encoder->forward(ids, int64_t(prompts.size()));
}

namespace {

// Rows of `src` ([rows, ...]) repeated: row r appears `times` times in a row (torch's repeat + view).
Tensor repeat_rows(const Tensor& src, int64_t first_row, int64_t times) {
  Shape s = src.shape();
  int64_t row = src.numel() / s[0];
  s[0] = times;
  Tensor out = Tensor::empty(s);
  for (int64_t t = 0; t < times; ++t)
    std::memcpy(out.f32() + t * row, src.f32() + first_row * row, size_t(row) * 4);
  return out;
}

Tensor concat_rows(const Tensor& a, const Tensor& b) {
  Shape s = a.shape();
  s[0] += b.dim(0);
  Tensor out = Tensor::empty(s);
  std::memcpy(out.f32(), a.f32(), a.nbytes());
  std::memcpy(out.f32() + a.numel(), b.f32(), b.nbytes());
  return out;
}

}  // namespace

GenerateResult txt2img(const StableDiffusionModel& model, GenerateParams p, const ProgressFn& progress,
                       const PipelineTaps* taps) {
  validate_params(model, p);
  const bool cfg = p.guidance > 1.f;  // diffusers: do_classifier_free_guidance
  const int64_t b = p.batch;

  // Text: [negative; positive], each repeated per image.
  Tensor emb = encode_prompts(model, cfg ? std::vector<std::string>{p.negative_prompt, p.prompt}
                                         : std::vector<std::string>{p.prompt});
  Tensor context = cfg ? concat_rows(repeat_rows(emb, 0, b), repeat_rows(emb, 1, b)) : repeat_rows(emb, 0, b);
  if (taps && taps->on_text_embeddings) taps->on_text_embeddings(emb);
  // reduce_memory: each network gives its prepared weights back when its stage is over.
  if (model.reduce_memory) model.text_encoder->release_weights();

  std::unique_ptr<Scheduler> sched = make_scheduler(model.scheduler_config, p.sampler);
  sched->set_timesteps(p.steps);
  const std::vector<double>& timesteps = sched->timesteps();
  const int total = int(timesteps.size());

  const int64_t lc = model.unet->config().in_channels;
  const int64_t lh = p.height / model.vae_scale_factor(), lw = p.width / model.vae_scale_factor();
  // Apple's pipelines draw numpy.random.RandomState(seed).randn (or their `nvidia` source), one image's
  // latents after another; diffusers draws the whole batch with one torch.randn.
  const NoiseSource source = p.noise.value_or(model.default_noise);
  TorchGenerator gen(p.seed);
  NumpyRandomState numpy_rs(int64_t(p.seed & 0xffffffffu));
  CudaPhiloxGenerator cuda_gen(p.seed);
  auto draw = [&] {
    const Shape shape{b, lc, lh, lw};
    switch (source) {
      case NoiseSource::kNumpy: return nchw_to_nhwc(numpy_rs.randn(shape));
      case NoiseSource::kCuda: return nchw_to_nhwc(cuda_gen.randn(shape));
      case NoiseSource::kNvidia: {
        Tensor t = Tensor::empty(shape);
        const int64_t per_image = lc * lh * lw;
        for (int64_t i = 0; i < b; ++i) cuda_gen.randn(t.f32() + i * per_image, per_image);
        return nchw_to_nhwc(t);
      }
      case NoiseSource::kTorch: break;
    }
    return nchw_to_nhwc(gen.randn(shape, p.randn_path));
  };
  Tensor latents = draw();
  {
    const float sigma = sched->init_noise_sigma();
    float* l = latents.f32();
    for (int64_t i = 0; i < latents.numel(); ++i) l[i] = l[i] * sigma;
  }
  if (taps && taps->on_initial_latents) taps->on_initial_latents(latents);
  if (progress && !progress(0, total)) fail(ErrorCode::kCancelled, "generation cancelled");

  for (int i = 0; i < total; ++i) {
    Tensor model_in = latents.clone();
    sched->scale_model_input(model_in, i);
    if (cfg) model_in = concat_rows(model_in, model_in);
    Tensor pred = model.unet->forward(model_in, float(timesteps[size_t(i)]), context);
    Tensor guided = pred;
    if (cfg) {
      guided = Tensor::empty(latents.shape());
      const int64_t n = latents.numel();
      const float* u = pred.f32();
      const float* t = pred.f32() + n;
      float* g = guided.f32();
      for (int64_t k = 0; k < n; ++k) g[k] = u[k] + p.guidance * (t[k] - u[k]);
    }
    Tensor noise;
    if (sched->needs_noise(i)) noise = draw();
    latents = sched->step(guided, i, latents, noise.defined() && noise.numel() ? &noise : nullptr);
    if (taps && taps->on_step_latents) taps->on_step_latents(i, latents);
    if (progress && !progress(i + 1, total)) fail(ErrorCode::kCancelled, "generation cancelled");
  }

  if (model.reduce_memory) model.unet->release_weights();
  Tensor z = latents.clone();
  {
    const float sf = model.vae->config().scaling_factor;
    float* zp = z.f32();
    for (int64_t i = 0; i < z.numel(); ++i) zp[i] = zp[i] / sf;
  }
  GenerateResult result;
  result.sampler_name = sched->name();
  result.timesteps = timesteps;
  for (int64_t k = 0; k < b; ++k) {  // decode one image at a time: same result, a quarter of the memory
    Tensor img = model.vae->forward(z.slice0(k, k + 1).clone());
    std::vector<RgbImage> rgb = to_rgb8(img);
    result.images.push_back(std::move(rgb[0]));
  }
  if (model.reduce_memory) model.vae->release_weights();
  result.nsfw.assign(size_t(b), false);
  if (p.safety_checker && model.safety_checker) {
    result.safety_checked = true;
    for (int64_t k = 0; k < b; ++k) {
      RgbImage& img = result.images[size_t(k)];
      Tensor pixels = clip_preprocess(img.pixels.data(), img.width, img.height, model.feature_extractor);
      SafetyResult r = model.safety_checker->check(pixels)[0];
      if (r.nsfw) {
        result.nsfw[size_t(k)] = true;
        std::fill(img.pixels.begin(), img.pixels.end(), 0);
      }
    }
    if (model.reduce_memory) model.safety_checker->release_weights();
  }
  return result;
}

}  // namespace sdpal
