// DPMSolverMultistepScheduler with algorithm_type dpmsolver++ ("DPM++ 2M" at solver_order 2):
// the model output is turned into an x0 prediction and steps combine the last solver_order of
// them in lambda = log(alpha / sigma) space. Lower orders are used to warm up and, with
// lower_order_final (and always when the final sigma is zero), at the end.
#include <cmath>
#include <deque>

#include "core/error.h"
#include "sched/factories.h"
#include "sched/noise_schedule.h"

namespace sdpal::sched {
namespace {

constexpr const char* kName = "DPMSolverMultistepScheduler";

struct AlphaSigma {
  float alpha, sigma, lambda;
};

// _sigma_to_alpha_sigma_t and lambda = log(alpha) - log(sigma), float32 like the 0-d tensors.
AlphaSigma alpha_sigma(float s) {
  AlphaSigma r;
  r.alpha = 1.0f / std::sqrt(s * s + 1.0f);
  r.sigma = s * r.alpha;
  r.lambda = std::log(r.alpha) - std::log(r.sigma);
  return r;
}

class DPMMultistep final : public Scheduler {
 public:
  explicit DPMMultistep(const SchedulerConfig& c) : c_(c) {
    // diffusers maps the deprecated "deis" and logrho/bh1/bh2 to these.
    if (c_.algorithm_type == "deis") c_.algorithm_type = "dpmsolver++";
    if (c_.solver_type == "logrho" || c_.solver_type == "bh1" || c_.solver_type == "bh2") c_.solver_type = "midpoint";
    require(c_.algorithm_type == "dpmsolver++", kName, "algorithm_type", c_.algorithm_type);
    require(c_.solver_type == "midpoint" || c_.solver_type == "heun", kName, "solver_type", c_.solver_type);
    require(c_.solver_order >= 1 && c_.solver_order <= 3, kName, "solver_order", std::to_string(c_.solver_order));
    require(c_.prediction_type == "epsilon" || c_.prediction_type == "v_prediction" || c_.prediction_type == "sample",
            kName, "prediction_type", c_.prediction_type);
    require(!c_.thresholding, kName, "thresholding", "true");
    require(!c_.use_exponential_sigmas, kName, "use_exponential_sigmas", "true");
    require(!c_.use_beta_sigmas, kName, "use_beta_sigmas", "true");
    require(!c_.use_lu_lambdas, kName, "use_lu_lambdas", "true");
    require(std::isinf(c_.lambda_min_clipped) && c_.lambda_min_clipped < 0, kName, "lambda_min_clipped",
            std::to_string(c_.lambda_min_clipped));
    require(!c_.variance_type || (*c_.variance_type != "learned" && *c_.variance_type != "learned_range"), kName,
            "variance_type", c_.variance_type.value_or(""));
    require(c_.final_sigmas_type == "zero" || c_.final_sigmas_type == "sigma_min", kName, "final_sigmas_type",
            c_.final_sigmas_type);
    require(c_.timestep_spacing == "leading" || c_.timestep_spacing == "trailing" || c_.timestep_spacing == "linspace",
            kName, "timestep_spacing", c_.timestep_spacing);
    alphas_cumprod_ = cumprod_alphas(make_betas(c_));
    if (c_.rescale_betas_zero_snr) alphas_cumprod_.back() = 0x1p-24f;
  }

  std::string name() const override { return kName; }
  float init_noise_sigma() const override { return 1.0f; }
  const std::vector<double>& timesteps() const override { return timesteps_; }
  const std::vector<float>& sigmas() const override { return sigmas_; }

  void set_timesteps(int n) override {
    check_num_steps(n, c_, kName);
    const int N = c_.num_train_timesteps;
    const int64_t last = N;  // lambda_min_clipped = -inf clips nothing
    std::vector<int64_t> ts;
    if (c_.timestep_spacing == "linspace") {
      const std::vector<double> v = np_linspace(0, double(last - 1), n + 1);
      for (size_t i = v.size() - 1; i >= 1; --i) ts.push_back(int64_t(np_round(v[i])));
    } else if (c_.timestep_spacing == "leading") {
      const int64_t ratio = last / (n + 1);
      for (int64_t i = n; i >= 1; --i) ts.push_back(i * ratio + c_.steps_offset);
    } else {
      for (double v : np_arange(double(last), 0, -double(N) / n)) ts.push_back(int64_t(np_round(v)) - 1);
    }
    const std::vector<float> train = train_sigmas(alphas_cumprod_);
    std::vector<double> sig;
    if (c_.use_karras_sigmas) {
      const double smin = c_.sigma_min.value_or(double(train.front()));
      const double smax = c_.sigma_max.value_or(double(train.back()));
      sig = karras_sigmas(smin, smax, n);
      const std::vector<float> log_sigmas = log_of(train);
      ts.clear();
      for (double s : sig) ts.push_back(int64_t(np_round(sigma_to_t(s, log_sigmas))));
    } else {
      for (int64_t t : ts) check_train_timestep(t, c_, kName);
      for (int64_t t : ts) sig.push_back(np_interp(double(t), train));
    }
    sigmas_.clear();
    for (double s : sig) sigmas_.push_back(float(s));
    sigmas_.push_back(c_.final_sigmas_type == "sigma_min" ? train[0] : 0.0f);
    timesteps_.assign(ts.begin(), ts.end());
    x0_history_.clear();
    lower_order_nums_ = 0;
    next_step_ = 0;
  }

  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample, const Tensor*) override {
    check(!timesteps_.empty(), ErrorCode::kInvalidArgument, std::string(kName) + ": call set_timesteps() first");
    check(step_index == next_step_ && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": step " + std::to_string(step_index) + " out of order");
    check_same_f32(model_output, sample, "model_output", "sample", kName);
    const int len = int(timesteps_.size());
    const bool lower_order_final =
        step_index == len - 1 &&
        (c_.euler_at_final || (c_.lower_order_final && len < 15) || c_.final_sigmas_type == "zero");
    const bool lower_order_second = step_index == len - 2 && c_.lower_order_final && len < 15;

    x0_history_.push_back(convert_model_output(model_output, sample, step_index));
    if (int(x0_history_.size()) > c_.solver_order) x0_history_.pop_front();

    Tensor out;
    if (c_.solver_order == 1 || lower_order_nums_ < 1 || lower_order_final)
      out = first_order(sample, step_index);
    else if (c_.solver_order == 2 || lower_order_nums_ < 2 || lower_order_second)
      out = second_order(sample, step_index);
    else
      out = third_order(sample, step_index);
    if (lower_order_nums_ < c_.solver_order) ++lower_order_nums_;
    ++next_step_;
    return out;
  }

  Tensor add_noise(const Tensor& original, const Tensor& noise, int step_index) const override {
    check(step_index >= 0 && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": add_noise step index out of range");
    const int64_t n = check_same_f32(original, noise, "original", "noise", kName);
    const AlphaSigma a = alpha_sigma(sigmas_[size_t(step_index)]);
    Tensor out = Tensor::empty(original.shape());
    const float *o = original.f32(), *z = noise.f32();
    float* y = out.f32();
    for (int64_t i = 0; i < n; ++i) y[i] = a.alpha * o[i] + a.sigma * z[i];
    return out;
  }

 private:
  Tensor convert_model_output(const Tensor& model_output, const Tensor& sample, int i) const {
    const AlphaSigma a = alpha_sigma(sigmas_[size_t(i)]);
    const float* m = model_output.f32();
    const float* s = sample.f32();
    Tensor x0 = Tensor::empty(sample.shape());
    float* y = x0.f32();
    const int64_t n = sample.numel();
    if (c_.prediction_type == "epsilon") {
      for (int64_t k = 0; k < n; ++k) y[k] = (s[k] - a.sigma * m[k]) / a.alpha;
    } else if (c_.prediction_type == "v_prediction") {
      for (int64_t k = 0; k < n; ++k) y[k] = a.alpha * s[k] - a.sigma * m[k];
    } else {
      std::copy(m, m + n, y);
    }
    return x0;
  }

  Tensor first_order(const Tensor& sample, int i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[size_t(i) + 1]), s0 = alpha_sigma(sigmas_[size_t(i)]);
    const float h = t.lambda - s0.lambda;
    const float a = t.sigma / s0.sigma, b = t.alpha * (std::exp(-h) - 1.0f);
    const float* x = sample.f32();
    const float* m0 = x0_history_.back().f32();
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t k = 0, n = sample.numel(); k < n; ++k) y[k] = a * x[k] - b * m0[k];
    return out;
  }

  Tensor second_order(const Tensor& sample, int i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[size_t(i) + 1]), s0 = alpha_sigma(sigmas_[size_t(i)]),
                     s1 = alpha_sigma(sigmas_[size_t(i) - 1]);
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
    const float r0 = h0 / h;
    const float inv_r0 = 1.0f / r0;
    const float a = t.sigma / s0.sigma;
    const float em1 = std::exp(-h) - 1.0f;
    const float b = t.alpha * em1;
    const bool midpoint = c_.solver_type == "midpoint";
    const float c = midpoint ? 0.5f * (t.alpha * em1) : t.alpha * (em1 / h + 1.0f);
    const float* x = sample.f32();
    const float* m0 = x0_history_[x0_history_.size() - 1].f32();
    const float* m1 = x0_history_[x0_history_.size() - 2].f32();
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t k = 0, n = sample.numel(); k < n; ++k) {
      const float d1 = inv_r0 * (m0[k] - m1[k]);
      y[k] = midpoint ? a * x[k] - b * m0[k] - c * d1 : a * x[k] - b * m0[k] + c * d1;
    }
    return out;
  }

  Tensor third_order(const Tensor& sample, int i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[size_t(i) + 1]), s0 = alpha_sigma(sigmas_[size_t(i)]),
                     s1 = alpha_sigma(sigmas_[size_t(i) - 1]), s2 = alpha_sigma(sigmas_[size_t(i) - 2]);
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
    const float r0 = h0 / h, r1 = h1 / h;
    const float inv_r0 = 1.0f / r0, inv_r1 = 1.0f / r1;
    const float r_mix = r0 / (r0 + r1), inv_sum = 1.0f / (r0 + r1);
    const float em1 = std::exp(-h) - 1.0f;
    const float a = t.sigma / s0.sigma;
    const float b = t.alpha * em1;
    const float c = t.alpha * (em1 / h + 1.0f);
    const float d = t.alpha * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f);
    const float* x = sample.f32();
    const size_t z = x0_history_.size();
    const float *m0 = x0_history_[z - 1].f32(), *m1 = x0_history_[z - 2].f32(), *m2 = x0_history_[z - 3].f32();
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t k = 0, n = sample.numel(); k < n; ++k) {
      const float d1_0 = inv_r0 * (m0[k] - m1[k]), d1_1 = inv_r1 * (m1[k] - m2[k]);
      const float d1 = d1_0 + r_mix * (d1_0 - d1_1);
      const float d2 = inv_sum * (d1_0 - d1_1);
      y[k] = a * x[k] - b * m0[k] + c * d1 - d * d2;
    }
    return out;
  }

  SchedulerConfig c_;
  std::vector<float> alphas_cumprod_;
  std::vector<double> timesteps_;
  std::vector<float> sigmas_;
  std::deque<Tensor> x0_history_;  // the last solver_order converted model outputs
  int lower_order_nums_ = 0;
  int next_step_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_dpm_multistep(const SchedulerConfig& c) { return std::make_unique<DPMMultistep>(c); }

}  // namespace sdpal::sched
