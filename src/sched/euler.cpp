// EulerDiscreteScheduler (s_churn = 0, as the pipeline calls it): deterministic Euler steps in
// sigma space. The UNet gets the fractional float32 timesteps and the input divided by
// sqrt(sigma^2 + 1).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sched/factories.h"
#include "sched/noise_schedule.h"
#include "sched/sigma_timesteps.h"

namespace sdpal::sched {
namespace {

constexpr const char* kName = "EulerDiscreteScheduler";

class Euler final : public Scheduler {
 public:
  explicit Euler(const SchedulerConfig& c) : c_(c) {
    require(c.prediction_type == "epsilon" || c.prediction_type == "v_prediction" || c.prediction_type == "sample" ||
                c.prediction_type == "original_sample",
            kName, "prediction_type", c.prediction_type);
    require(c.interpolation_type == "linear", kName, "interpolation_type", c.interpolation_type);
    require(!c.use_exponential_sigmas, kName, "use_exponential_sigmas", "true");
    require(!c.use_beta_sigmas, kName, "use_beta_sigmas", "true");
    require(c.timestep_type == "discrete", kName, "timestep_type", c.timestep_type);
    require(c.final_sigmas_type == "zero" || c.final_sigmas_type == "sigma_min", kName, "final_sigmas_type",
            c.final_sigmas_type);
    check_spacing(c, kName);
    alphas_cumprod_ = cumprod_alphas(make_betas(c));
    if (c.rescale_betas_zero_snr) alphas_cumprod_.back() = 0x1p-24f;  // as diffusers, to keep sigma finite
  }

  std::string name() const override { return kName; }
  const std::vector<double>& timesteps() const override { return timesteps_; }
  const std::vector<float>& sigmas() const override { return sigmas_; }

  float init_noise_sigma() const override { return sigma_init_noise(c_, sigmas_); }

  void set_timesteps(int n) override {
    check_num_steps(n, c_, kName);
    const std::vector<double> ts = sigma_space_timesteps(c_, n);
    const std::vector<float> train = train_sigmas(alphas_cumprod_);
    std::vector<double> sig;
    for (double t : ts) sig.push_back(np_interp(t, train));
    std::vector<double> tt = ts;
    if (c_.use_karras_sigmas) {
      // Karras over the interpolated range, then back to fractional timesteps.
      const double smin = c_.sigma_min.value_or(sig.back()), smax = c_.sigma_max.value_or(sig.front());
      sig = karras_sigmas(smin, smax, n);
      const std::vector<float> log_sigmas = log_of(train);
      tt.clear();
      for (double s : sig) tt.push_back(sigma_to_t(s, log_sigmas));
    }
    sigmas_.clear();
    for (double s : sig) sigmas_.push_back(float(s));
    sigmas_.push_back(c_.final_sigmas_type == "sigma_min" ? train[0] : 0.0f);
    timesteps_.clear();
    for (double t : tt) timesteps_.push_back(double(float(t)));
    next_step_ = 0;
  }

  void scale_model_input(Tensor& sample, int step_index) const override {
    check(step_index >= 0 && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": scale_model_input step index out of range");
    scale_by_sigma(sample, sigmas_[size_t(step_index)]);
  }

  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample, const Tensor*) override {
    check(!timesteps_.empty(), ErrorCode::kInvalidArgument, std::string(kName) + ": call set_timesteps() first");
    check(step_index == next_step_ && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": step " + std::to_string(step_index) + " out of order");
    const int64_t n = check_same_f32(model_output, sample, "model_output", "sample", kName);
    const float sigma = sigmas_[size_t(step_index)];
    const float sigma_hat = sigma * (0.0f + 1.0f);  // gamma = 0 without churn
    const float dt = sigmas_[size_t(step_index) + 1] - sigma_hat;
    const float v_scale = -sigma / std::sqrt(sigma * sigma + 1.0f), v_div = sigma * sigma + 1.0f;
    const float* m = model_output.f32();
    const float* s = sample.f32();
    const bool epsilon = c_.prediction_type == "epsilon", v_pred = c_.prediction_type == "v_prediction";
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t i = 0; i < n; ++i) {
      float x0;
      if (epsilon) x0 = s[i] - sigma_hat * m[i];
      else if (v_pred) x0 = m[i] * v_scale + s[i] / v_div;
      else x0 = m[i];
      const float derivative = (s[i] - x0) / sigma_hat;
      y[i] = s[i] + derivative * dt;
    }
    ++next_step_;
    return out;
  }

  Tensor add_noise(const Tensor& original, const Tensor& noise, int step_index) const override {
    return add_sigma_noise(original, noise, sigmas_, step_index, kName);
  }

 private:
  SchedulerConfig c_;
  std::vector<float> alphas_cumprod_;
  std::vector<double> timesteps_;
  std::vector<float> sigmas_;
  int next_step_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_euler(const SchedulerConfig& c) { return std::make_unique<Euler>(c); }

}  // namespace sdpal::sched
