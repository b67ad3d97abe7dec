// scheduler_config.json -> SchedulerConfig with diffusers' from_config semantics, and the
// factory that picks the scheduler the way StableDiffusionPipeline does.
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "sched/factories.h"
#include "sched/scheduler.h"

namespace sdpal {
namespace {

using nlohmann::json;

// Constructor arguments of each class beyond the eight that all five share.
const std::vector<std::string>& own_keys(SamplerKind kind) {
  static const std::vector<std::string> pndm = {"skip_prk_steps", "set_alpha_to_one"};
  static const std::vector<std::string> ddim = {"clip_sample", "set_alpha_to_one", "thresholding",
                                                "clip_sample_range", "rescale_betas_zero_snr"};
  // sigma_min/sigma_max: DPM reads them too when present (diffusers keeps unknown keys in the
  // config and _convert_to_karras looks them up with hasattr).
  static const std::vector<std::string> euler = {"interpolation_type", "use_karras_sigmas", "use_exponential_sigmas",
                                                 "use_beta_sigmas", "sigma_min", "sigma_max", "timestep_type",
                                                 "rescale_betas_zero_snr", "final_sigmas_type"};
  static const std::vector<std::string> euler_a = {"rescale_betas_zero_snr"};
  static const std::vector<std::string> dpm = {
      "solver_order", "thresholding", "algorithm_type", "solver_type", "lower_order_final", "euler_at_final",
      "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "final_sigmas_type",
      "lambda_min_clipped", "variance_type", "rescale_betas_zero_snr", "sigma_min", "sigma_max"};
  static const std::vector<std::string> none;
  switch (kind) {
    case SamplerKind::PNDM: return pndm;
    case SamplerKind::DDIM: return ddim;
    case SamplerKind::Euler: return euler;
    case SamplerKind::EulerAncestral: return euler_a;
    case SamplerKind::DPMPP2M: return dpm;
    case SamplerKind::Default: break;
  }
  return none;
}

bool class_has_key(SamplerKind kind, const std::string& key) {
  static const std::vector<std::string> shared = {"num_train_timesteps", "beta_start",      "beta_end",
                                                  "beta_schedule",       "trained_betas",   "prediction_type",
                                                  "timestep_spacing",    "steps_offset"};
  for (const auto& k : shared)
    if (key == k) return true;
  for (const auto& k : own_keys(kind))
    if (key == k) return true;
  return false;
}

[[noreturn]] void bad_type(const std::string& key, const char* expected, const json& v) {
  fail(ErrorCode::kFormat, "scheduler config key '" + key + "': expected " + expected + ", got " + v.dump());
}

struct Reader {
  const json& j;
  SamplerKind kind;

  const json* get(const std::string& key) const {
    if (!class_has_key(kind, key)) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  void read(const std::string& key, int& out) const {
    if (const json* v = get(key)) {
      if (!v->is_number_integer()) bad_type(key, "an integer", *v);
      const int64_t x = v->get<int64_t>();
      if (x < -(int64_t(1) << 30) || x > (int64_t(1) << 30)) bad_type(key, "a small integer", *v);
      out = int(x);
    }
  }
  void read(const std::string& key, double& out) const {
    if (const json* v = get(key)) {
      if (!v->is_number()) bad_type(key, "a number", *v);
      out = v->get<double>();
    }
  }
  void read(const std::string& key, bool& out) const {
    if (const json* v = get(key)) {
      if (!v->is_boolean()) bad_type(key, "true or false", *v);
      out = v->get<bool>();
    }
  }
  void read(const std::string& key, std::string& out) const {
    if (const json* v = get(key)) {
      if (!v->is_string()) bad_type(key, "a string", *v);
      out = v->get<std::string>();
    }
  }
  void read(const std::string& key, std::optional<double>& out) const {
    if (const json* v = get(key)) {
      if (v->is_null()) out.reset();
      else if (v->is_number()) out = v->get<double>();
      else bad_type(key, "a number or null", *v);
    }
  }
  void read(const std::string& key, std::optional<std::string>& out) const {
    if (const json* v = get(key)) {
      if (v->is_null()) out.reset();
      else if (v->is_string()) out = v->get<std::string>();
      else bad_type(key, "a string or null", *v);
    }
  }
  void read(const std::string& key, std::optional<std::vector<double>>& out) const {
    if (const json* v = get(key)) {
      if (v->is_null()) {
        out.reset();
        return;
      }
      if (!v->is_array()) bad_type(key, "an array of numbers or null", *v);
      std::vector<double> xs;
      for (const json& x : *v) {
        if (!x.is_number()) bad_type(key, "an array of numbers or null", *v);
        xs.push_back(x.get<double>());
      }
      out = std::move(xs);
    }
  }
};

SamplerKind kind_of_class(const std::string& class_name) {
  for (SamplerKind k : {SamplerKind::PNDM, SamplerKind::DDIM, SamplerKind::Euler, SamplerKind::EulerAncestral,
                        SamplerKind::DPMPP2M})
    if (class_name == scheduler_class_name(k)) return k;
  return SamplerKind::Default;
}

}  // namespace

const char* scheduler_class_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::PNDM: return "PNDMScheduler";
    case SamplerKind::DDIM: return "DDIMScheduler";
    case SamplerKind::Euler: return "EulerDiscreteScheduler";
    case SamplerKind::EulerAncestral: return "EulerAncestralDiscreteScheduler";
    case SamplerKind::DPMPP2M: return "DPMSolverMultistepScheduler";
    case SamplerKind::Default: break;
  }
  return "default";
}

SchedulerConfig SchedulerConfig::defaults(SamplerKind kind) {
  check(kind != SamplerKind::Default, ErrorCode::kInternal, "SchedulerConfig::defaults needs a concrete kind");
  SchedulerConfig c;
  c.kind = kind;
  const bool sigma_space = kind == SamplerKind::Euler || kind == SamplerKind::EulerAncestral || kind == SamplerKind::DPMPP2M;
  c.timestep_spacing = sigma_space ? "linspace" : "leading";
  c.set_alpha_to_one = kind == SamplerKind::DDIM;
  return c;
}

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j, SamplerKind kind) {
  check(j.is_object(), ErrorCode::kFormat, "scheduler config: expected a JSON object");
  SchedulerConfig c = defaults(kind);
  const Reader r{j, kind};
  r.read("num_train_timesteps", c.num_train_timesteps);
  r.read("beta_start", c.beta_start);
  r.read("beta_end", c.beta_end);
  r.read("beta_schedule", c.beta_schedule);
  r.read("trained_betas", c.trained_betas);
  r.read("prediction_type", c.prediction_type);
  r.read("timestep_spacing", c.timestep_spacing);
  r.read("steps_offset", c.steps_offset);
  r.read("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
  r.read("skip_prk_steps", c.skip_prk_steps);
  r.read("set_alpha_to_one", c.set_alpha_to_one);
  r.read("clip_sample", c.clip_sample);
  r.read("clip_sample_range", c.clip_sample_range);
  r.read("thresholding", c.thresholding);
  r.read("interpolation_type", c.interpolation_type);
  r.read("use_karras_sigmas", c.use_karras_sigmas);
  r.read("use_exponential_sigmas", c.use_exponential_sigmas);
  r.read("use_beta_sigmas", c.use_beta_sigmas);
  r.read("sigma_min", c.sigma_min);
  r.read("sigma_max", c.sigma_max);
  r.read("timestep_type", c.timestep_type);
  r.read("final_sigmas_type", c.final_sigmas_type);
  r.read("solver_order", c.solver_order);
  r.read("algorithm_type", c.algorithm_type);
  r.read("solver_type", c.solver_type);
  r.read("lower_order_final", c.lower_order_final);
  r.read("euler_at_final", c.euler_at_final);
  r.read("use_lu_lambdas", c.use_lu_lambdas);
  r.read("lambda_min_clipped", c.lambda_min_clipped);
  r.read("variance_type", c.variance_type);
  check(c.num_train_timesteps >= 2, ErrorCode::kFormat,
        "scheduler config key 'num_train_timesteps': must be at least 2, got " + std::to_string(c.num_train_timesteps));
  return c;
}

// Scheduler defaults.
const std::vector<float>& Scheduler::sigmas() const {
  static const std::vector<float> none;
  return none;
}
void Scheduler::scale_model_input(Tensor&, int) const {}
bool Scheduler::needs_noise(int) const { return false; }

std::unique_ptr<Scheduler> make_scheduler(const SchedulerConfig& config, const SamplerOptions& options) {
  SchedulerConfig c = config;
  if (options.karras) {
    check(c.kind == SamplerKind::Euler || c.kind == SamplerKind::DPMPP2M, ErrorCode::kInvalidArgument,
          std::string("karras sigmas are only available with the euler and dpmpp_2m samplers, not ") +
              scheduler_class_name(c.kind));
    c.use_karras_sigmas = true;
  }
  switch (c.kind) {
    case SamplerKind::PNDM: return sched::make_pndm(c);
    case SamplerKind::DDIM: return sched::make_ddim(c, options.eta);
    case SamplerKind::Euler: return sched::make_euler(c);
    case SamplerKind::EulerAncestral: return sched::make_euler_ancestral(c);
    case SamplerKind::DPMPP2M: return sched::make_dpm_multistep(c);
    case SamplerKind::Default: break;
  }
  fail(ErrorCode::kInternal, "make_scheduler: config has no concrete scheduler kind");
}

std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& model_config, const SamplerOptions& options) {
  check(model_config.is_object(), ErrorCode::kFormat, "scheduler config: expected a JSON object");
  std::string class_name;
  if (auto it = model_config.find("_class_name"); it != model_config.end() && it->is_string())
    class_name = it->get<std::string>();
  const SamplerKind model_kind = kind_of_class(class_name);
  SamplerKind kind = options.kind;

  SchedulerConfig c;
  if (kind == SamplerKind::Default || kind == model_kind) {
    if (model_kind == SamplerKind::Default)
      fail(ErrorCode::kUnsupported, "scheduler class '" + class_name +
                                        "' is not supported; choose a sampler (pndm, ddim, euler, euler_a, dpmpp_2m)");
    // The model's own scheduler, as StableDiffusionPipeline.__init__ fixes its config.
    c = SchedulerConfig::from_json(model_config, model_kind);
    c.steps_offset = 1;
    if (model_kind == SamplerKind::DDIM) c.clip_sample = false;
  } else {
    // Kind.from_config(pipe.scheduler.config): keys that came from the model class's defaults
    // are not carried over (diffusers' _use_default_values), so only the file's keys are,
    // with the pipeline's fixes applied to those.
    json carried = model_config;
    if (auto it = carried.find("steps_offset"); it != carried.end() && *it != json(1)) *it = 1;
    if (auto it = carried.find("clip_sample"); it != carried.end() && *it == json(true)) *it = false;
    c = SchedulerConfig::from_json(carried, kind);
  }
  return make_scheduler(c, options);
}

std::unique_ptr<Scheduler> load_scheduler(const std::string& path, const SamplerOptions& options) {
  std::ifstream in(path, std::ios::binary);
  check(bool(in), ErrorCode::kIo, "cannot open scheduler config " + path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON: " + e.what());
  }
  try {
    return make_scheduler(j, options);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

SamplerKind parse_sampler_name(const std::string& name) {
  if (name == "default") return SamplerKind::Default;
  if (name == "pndm") return SamplerKind::PNDM;
  if (name == "ddim") return SamplerKind::DDIM;
  if (name == "euler") return SamplerKind::Euler;
  if (name == "euler_a") return SamplerKind::EulerAncestral;
  if (name == "dpmpp_2m") return SamplerKind::DPMPP2M;
  fail(ErrorCode::kInvalidArgument,
       "sampler '" + name + "' is not one of default, pndm, ddim, euler, euler_a, dpmpp_2m");
}

}  // namespace sdpal
