// EulerAncestralDiscreteScheduler: an Euler step down to sigma_down, then fresh noise scaled by
// sigma_up. diffusers draws the noise on every step, the last (sigma_up = 0) included, so the
// caller's generator advances the same way.
#include <cmath>

#include "core/error.h"
#include "sched/factories.h"
#include "sched/noise_schedule.h"
#include "sched/sigma_timesteps.h"

namespace sdpal::sched {
namespace {

constexpr const char* kName = "EulerAncestralDiscreteScheduler";

class EulerAncestral final : public Scheduler {
 public:
  explicit EulerAncestral(const SchedulerConfig& c) : c_(c) {
    require(c.prediction_type == "epsilon" || c.prediction_type == "v_prediction", kName, "prediction_type",
            c.prediction_type);
    check_spacing(c, kName);
    alphas_cumprod_ = cumprod_alphas(make_betas(c));
    if (c.rescale_betas_zero_snr) alphas_cumprod_.back() = 0x1p-24f;
  }

  std::string name() const override { return kName; }
  const std::vector<double>& timesteps() const override { return timesteps_; }
  const std::vector<float>& sigmas() const override { return sigmas_; }
  float init_noise_sigma() const override { return sigma_init_noise(c_, sigmas_); }
  bool needs_noise(int) const override { return true; }

  void set_timesteps(int n) override {
    check_num_steps(n, c_, kName);
    timesteps_ = sigma_space_timesteps(c_, n);
    const std::vector<float> train = train_sigmas(alphas_cumprod_);
    sigmas_.clear();
    for (double t : timesteps_) sigmas_.push_back(float(np_interp(t, train)));
    sigmas_.push_back(0.0f);
    next_step_ = 0;
  }

  void scale_model_input(Tensor& sample, int step_index) const override {
    check(step_index >= 0 && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": scale_model_input step index out of range");
    scale_by_sigma(sample, sigmas_[size_t(step_index)]);
  }

  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample, const Tensor* noise) override {
    check(!timesteps_.empty(), ErrorCode::kInvalidArgument, std::string(kName) + ": call set_timesteps() first");
    check(step_index == next_step_ && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": step " + std::to_string(step_index) + " out of order");
    const int64_t n = check_same_f32(model_output, sample, "model_output", "sample", kName);
    check(noise != nullptr, ErrorCode::kInvalidArgument, std::string(kName) + ": step needs a noise tensor");
    check_same_f32(*noise, sample, "noise", "sample", kName);

    const float sigma = sigmas_[size_t(step_index)];
    const float sigma_to = sigmas_[size_t(step_index) + 1];
    const float from2 = sigma * sigma, to2 = sigma_to * sigma_to;
    const float sigma_up = std::sqrt(to2 * (from2 - to2) / from2);
    const float sigma_down = std::sqrt(to2 - sigma_up * sigma_up);
    const float dt = sigma_down - sigma;
    const float v_scale = -sigma / std::sqrt(sigma * sigma + 1.0f), v_div = sigma * sigma + 1.0f;

    const float* m = model_output.f32();
    const float* s = sample.f32();
    const float* z = noise->f32();
    const bool epsilon = c_.prediction_type == "epsilon";
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t i = 0; i < n; ++i) {
      const float x0 = epsilon ? s[i] - sigma * m[i] : m[i] * v_scale + s[i] / v_div;
      const float derivative = (s[i] - x0) / sigma;
      const float prev = s[i] + derivative * dt;
      y[i] = prev + z[i] * sigma_up;
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

std::unique_ptr<Scheduler> make_euler_ancestral(const SchedulerConfig& c) {
  return std::make_unique<EulerAncestral>(c);
}

}  // namespace sdpal::sched
