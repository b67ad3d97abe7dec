// Diffusion schedulers, reproducing diffusers 0.31.0 (PNDM/PLMS, DDIM, Euler, Euler ancestral,
// DPM-Solver++ multistep) to float32 tolerance.
//
// Pure: no RNG and no I/O inside a step. The pipeline draws noise with the torch-compatible
// generator when needs_noise() says so and passes it to step(). Tensors are float32 and are
// treated element-wise, so the layout (NCHW or NHWC) does not matter.
#pragma once
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace sdpal {

enum class SamplerKind { Default, PNDM, DDIM, Euler, EulerAncestral, DPMPP2M };

// Every constructor argument of the five diffusers classes. Fields a class does not have are
// ignored by it; defaults() fills in the target class's own defaults (they differ: e.g.
// timestep_spacing is "leading" for PNDM/DDIM and "linspace" for Euler/DPM).
struct SchedulerConfig {
  SamplerKind kind = SamplerKind::PNDM;  // never Default here

  // Shared by all five.
  int num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";  // linear | scaled_linear | squaredcos_cap_v2
  std::optional<std::vector<double>> trained_betas;
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample (DDIM, DPM)
  std::string timestep_spacing = "leading";  // leading | trailing | linspace
  int steps_offset = 0;
  bool rescale_betas_zero_snr = false;  // DDIM, Euler, Euler a, DPM

  // PNDM.
  bool skip_prk_steps = false;
  // PNDM and DDIM (diffusers' defaults: PNDM false, DDIM true).
  bool set_alpha_to_one = false;

  // DDIM (thresholding also DPM).
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  bool thresholding = false;

  // Euler (sigma-space options shared with DPM).
  std::string interpolation_type = "linear";
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_beta_sigmas = false;
  std::optional<double> sigma_min, sigma_max;
  std::string timestep_type = "discrete";
  std::string final_sigmas_type = "zero";  // zero | sigma_min

  // DPM-Solver multistep.
  int solver_order = 2;
  std::string algorithm_type = "dpmsolver++";
  std::string solver_type = "midpoint";  // midpoint | heun
  bool lower_order_final = true;
  bool euler_at_final = false;
  bool use_lu_lambdas = false;
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
  std::optional<std::string> variance_type;

  // The class's __init__ defaults.
  static SchedulerConfig defaults(SamplerKind kind);
  // diffusers' `Class.from_config(json)`: the keys the class has are read from `json`, the
  // others keep the class's defaults; keys of other classes are ignored. Wrong JSON types are
  // Error(kFormat) naming the key.
  static SchedulerConfig from_json(const nlohmann::json& json, SamplerKind kind);
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual std::string name() const = 0;  // the diffusers class name
  // Also resets the multistep history. Error(kInvalidArgument) for steps < 1 or above
  // num_train_timesteps.
  virtual void set_timesteps(int num_inference_steps) = 0;
  // The timesteps the UNet is called with, in order (PNDM repeats one; Euler's are fractional).
  virtual const std::vector<double>& timesteps() const = 0;
  // The sigma schedule (timesteps().size() + 1 values) for sigma-space schedulers, else empty.
  virtual const std::vector<float>& sigmas() const;
  // The pipeline multiplies the initial noise by this.
  virtual float init_noise_sigma() const = 0;
  // Scale the (latent) model input, in place, for the call at `step_index` of timesteps().
  virtual void scale_model_input(Tensor& sample, int step_index) const;  // default: no-op
  // Whether step() at this index consumes a noise tensor shaped like the sample (Euler a;
  // DDIM with eta > 0). diffusers draws it on every such step, the last one included.
  virtual bool needs_noise(int step_index) const;  // default false
  // Returns x_{t-1}. Steps must be taken in order 0, 1, 2, ... after set_timesteps().
  // `noise` may be null when needs_noise() is false.
  virtual Tensor step(const Tensor& model_output, int step_index, const Tensor& sample, const Tensor* noise) = 0;
  // diffusers add_noise(original, noise, timesteps[step_index]) (for img2img).
  virtual Tensor add_noise(const Tensor& original, const Tensor& noise, int step_index) const = 0;
};

struct SamplerOptions {
  SamplerKind kind = SamplerKind::Default;  // Default: the class named in "_class_name"
  bool karras = false;  // true forces use_karras_sigmas (Euler, DPM++ only); false keeps the config's
  float eta = 0.f;      // DDIM only; like diffusers' pipeline, other schedulers ignore it
};

// Builds the scheduler a diffusers StableDiffusionPipeline would use: the model's scheduler
// (with the pipeline's config fixes: steps_offset -> 1, clip_sample -> false), or, for another
// kind, `Kind.from_config(pipe.scheduler.config)`.
std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& model_scheduler_config, const SamplerOptions& options);
std::unique_ptr<Scheduler> make_scheduler(const SchedulerConfig& config, const SamplerOptions& options);
// Reads scheduler_config.json; errors name the file.
std::unique_ptr<Scheduler> load_scheduler(const std::string& scheduler_config_path, const SamplerOptions& options);

// "pndm" | "ddim" | "euler" | "euler_a" | "dpmpp_2m" (and "default"); Error(kInvalidArgument) otherwise.
SamplerKind parse_sampler_name(const std::string& name);
// The diffusers class name for a concrete kind.
const char* scheduler_class_name(SamplerKind kind);

}  // namespace sdpal
