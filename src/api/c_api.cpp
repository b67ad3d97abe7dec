// The C API: exceptions stop here and become status codes plus a thread-local message.
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "core/error.h"
#include "core/precision.h"
#include "core/threads.h"
#include "io/png.h"
#include "pipeline/txt2img.h"
#include "sdpal.h"

struct sdpal_model {
  std::unique_ptr<sdpal::StableDiffusionModel> model;
  int threads = 0;
};

namespace {

thread_local std::string g_last_error;

template <typename F>
sdpal_status guarded(F&& f) {
  try {
    g_last_error.clear();
    f();
    return SDPAL_OK;
  } catch (const sdpal::Error& e) {
    g_last_error = e.what();
    return static_cast<sdpal_status>(static_cast<int>(e.code()));
  } catch (const std::bad_alloc&) {
    g_last_error = "out of memory";
    return SDPAL_ERR_INTERNAL;
  } catch (const std::exception& e) {
    g_last_error = e.what();
    return SDPAL_ERR_INTERNAL;
  }
}

// A C caller may store any int in an enum field; reading it as the C++ enum would be undefined for values
// outside the enumeration, so enum fields are read as their int bytes.
template <typename Enum>
int enum_value(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int));
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

sdpal::SamplerKind to_kind(int s) {
  switch (s) {
    case SDPAL_SAMPLER_DEFAULT: return sdpal::SamplerKind::Default;
    case SDPAL_SAMPLER_PNDM: return sdpal::SamplerKind::PNDM;
    case SDPAL_SAMPLER_DDIM: return sdpal::SamplerKind::DDIM;
    case SDPAL_SAMPLER_EULER: return sdpal::SamplerKind::Euler;
    case SDPAL_SAMPLER_EULER_A: return sdpal::SamplerKind::EulerAncestral;
    case SDPAL_SAMPLER_DPMPP_2M: return sdpal::SamplerKind::DPMPP2M;
  }
  sdpal::fail(sdpal::ErrorCode::kInvalidArgument, "unknown sampler " + std::to_string(s));
}

}  // namespace

extern "C" {

void sdpal_default_params(sdpal_generate_params* p) {
  if (!p) return;
  std::memset(p, 0, sizeof(*p));
  p->steps = 50;
  p->guidance = 7.5f;
  p->batch = 1;
  p->safety_checker = 1;
}

void sdpal_default_model_options(sdpal_model_options* o) {
  if (!o) return;
  std::memset(o, 0, sizeof(*o));
  o->precision = SDPAL_PRECISION_F32;
  o->safety_checker = 1;
}

sdpal_status sdpal_model_open_ex(const char* path, const sdpal_model_options* options, sdpal_model** out) {
  return guarded([&] {
    sdpal::check(path && options && out, sdpal::ErrorCode::kInvalidArgument, "sdpal_model_open: null argument");
    *out = nullptr;
    sdpal::LoadOptions lo;
    switch (options->precision) {  // an int: out-of-range values reach the default branch
      case SDPAL_PRECISION_F32: lo.precision = sdpal::Precision::F32; break;
      case SDPAL_PRECISION_BF16: lo.precision = sdpal::Precision::BF16; break;
      case SDPAL_PRECISION_AUTO: lo.precision = sdpal::default_precision(); break;
      default:
        sdpal::fail(sdpal::ErrorCode::kInvalidArgument, "unknown precision " + std::to_string(int(options->precision)));
    }
    lo.safety_checker = options->safety_checker != 0;
    lo.reduce_memory = options->reduce_memory != 0;
    lo.variant = options->variant ? options->variant : "";
    sdpal::set_num_threads(options->threads);
    auto m = std::make_unique<sdpal_model>();
    m->threads = options->threads;
    m->model = sdpal::load_model(path, lo);
    *out = m.release();
  });
}

sdpal_status sdpal_model_open(const char* path, int threads, sdpal_model** out) {
  sdpal_model_options o;
  sdpal_default_model_options(&o);
  o.threads = threads;
  return sdpal_model_open_ex(path, &o, out);
}

void sdpal_model_free(sdpal_model* model) { delete model; }

sdpal_status sdpal_generate(sdpal_model* model, const sdpal_generate_params* params, sdpal_result** out) {
  return guarded([&] {
    sdpal::check(model && params && out, sdpal::ErrorCode::kInvalidArgument, "sdpal_generate: null argument");
    sdpal::check(params->prompt != nullptr, sdpal::ErrorCode::kInvalidArgument, "sdpal_generate: prompt is null");
    *out = nullptr;
    sdpal::set_num_threads(model->threads);
    sdpal::GenerateParams p;
    p.prompt = params->prompt;
    p.negative_prompt = params->negative_prompt ? params->negative_prompt : "";
    p.steps = params->steps;
    p.guidance = params->guidance;
    p.seed = params->seed;
    p.width = params->width;
    p.height = params->height;
    p.batch = params->batch;
    p.sampler.kind = to_kind(enum_value(params->sampler));
    p.sampler.karras = params->karras != 0;
    p.sampler.eta = params->eta;
    p.safety_checker = params->safety_checker != 0;
    switch (const int rng = enum_value(params->rng)) {
      case SDPAL_RNG_DEFAULT: break;
      case SDPAL_RNG_TORCH: p.noise = sdpal::NoiseSource::kTorch; break;
      case SDPAL_RNG_NUMPY: p.noise = sdpal::NoiseSource::kNumpy; break;
      case SDPAL_RNG_CUDA: p.noise = sdpal::NoiseSource::kCuda; break;
      case SDPAL_RNG_NVIDIA: p.noise = sdpal::NoiseSource::kNvidia; break;
      default: sdpal::fail(sdpal::ErrorCode::kInvalidArgument, "unknown rng " + std::to_string(rng));
    }
    sdpal::ProgressFn progress;
    if (params->progress) {
      auto fn = params->progress;
      void* ud = params->progress_user_data;
      progress = [fn, ud](int step, int total) { return fn(step, total, ud) != 0; };
    }
    sdpal::GenerateResult r = sdpal::txt2img(*model->model, p, progress);
    auto* res = static_cast<sdpal_result*>(std::calloc(1, sizeof(sdpal_result)));
    if (!res) throw std::bad_alloc();
    res->images = static_cast<sdpal_image*>(std::calloc(r.images.size(), sizeof(sdpal_image)));
    if (!res->images) {
      std::free(res);
      throw std::bad_alloc();
    }
    res->count = int(r.images.size());
    for (size_t i = 0; i < r.images.size(); ++i) {
      sdpal_image& im = res->images[i];
      im.width = r.images[i].width;
      im.height = r.images[i].height;
      im.nsfw = r.nsfw[i] ? 1 : 0;
      im.rgb = static_cast<uint8_t*>(std::malloc(r.images[i].pixels.size()));
      if (!im.rgb) {
        sdpal_result_free(res);
        throw std::bad_alloc();
      }
      std::memcpy(im.rgb, r.images[i].pixels.data(), r.images[i].pixels.size());
    }
    *out = res;
  });
}

void sdpal_result_free(sdpal_result* result) {
  if (!result) return;
  if (result->images)
    for (int i = 0; i < result->count; ++i) std::free(result->images[i].rgb);
  std::free(result->images);
  std::free(result);
}

sdpal_status sdpal_write_png(const char* path, const sdpal_image* image, const char* parameters) {
  return guarded([&] {
    sdpal::check(path && image && image->rgb, sdpal::ErrorCode::kInvalidArgument, "sdpal_write_png: null argument");
    std::vector<std::pair<std::string, std::string>> text;
    if (parameters) text.emplace_back("parameters", parameters);
    sdpal::write_png(path, image->rgb, image->width, image->height, text);
  });
}

const char* sdpal_last_error(void) { return g_last_error.c_str(); }

const char* sdpal_version(void) { return "0.1.0"; }

}  // extern "C"
