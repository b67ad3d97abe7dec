// DDIMScheduler. eta = 0 is deterministic; eta > 0 adds std_dev_t * noise, the noise drawn by
// the caller (diffusers' variance_noise) on every step.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sched/factories.h"
#include "sched/noise_schedule.h"

namespace sdpal::sched {
namespace {

constexpr const char* kName = "DDIMScheduler";

class DDIM final : public Scheduler {
 public:
  DDIM(const SchedulerConfig& c, float eta) : c_(c), eta_(eta) {
    check(std::isfinite(eta) && eta >= 0, ErrorCode::kInvalidArgument,
          std::string(kName) + ": eta must be >= 0, got " + std::to_string(eta));
    require(!c.thresholding, kName, "thresholding", "true");
    require(c.prediction_type == "epsilon" || c.prediction_type == "v_prediction" || c.prediction_type == "sample",
            kName, "prediction_type", c.prediction_type);
    require(c.timestep_spacing == "leading" || c.timestep_spacing == "trailing" || c.timestep_spacing == "linspace",
            kName, "timestep_spacing", c.timestep_spacing);
    alphas_cumprod_ = cumprod_alphas(make_betas(c));
    final_alpha_cumprod_ = c.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
  }

  std::string name() const override { return kName; }
  float init_noise_sigma() const override { return 1.0f; }
  const std::vector<double>& timesteps() const override { return timesteps_; }
  bool needs_noise(int) const override { return eta_ > 0; }

  void set_timesteps(int n) override {
    check_num_steps(n, c_, kName);
    const int N = c_.num_train_timesteps;
    std::vector<int64_t> ts;  // descending
    if (c_.timestep_spacing == "linspace") {
      const std::vector<double> v = np_linspace(0, N - 1, n);
      for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(int64_t(np_round(*it)));
    } else if (c_.timestep_spacing == "leading") {
      const int64_t ratio = N / n;
      for (int64_t i = n - 1; i >= 0; --i) ts.push_back(i * ratio + c_.steps_offset);
    } else {
      for (double v : np_arange(N, 0, -double(N) / n)) ts.push_back(int64_t(np_round(v)) - 1);
    }
    for (int64_t t : ts) check_train_timestep(t, c_, kName);
    timesteps_.assign(ts.begin(), ts.end());
    num_inference_steps_ = n;
    next_step_ = 0;
  }

  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample, const Tensor* noise) override {
    check(!timesteps_.empty(), ErrorCode::kInvalidArgument, std::string(kName) + ": call set_timesteps() first");
    check(step_index == next_step_ && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": step " + std::to_string(step_index) + " out of order");
    const int64_t n = check_same_f32(model_output, sample, "model_output", "sample", kName);
    if (eta_ > 0) {
      check(noise != nullptr, ErrorCode::kInvalidArgument, std::string(kName) + ": eta > 0 needs a noise tensor");
      check_same_f32(*noise, sample, "noise", "sample", kName);
    }
    const int64_t t = int64_t(timesteps_[size_t(step_index)]);
    // diffusers steps back by N // n whatever the spacing.
    const int64_t t_prev = t - c_.num_train_timesteps / num_inference_steps_;
    const float a_t = alphas_cumprod_[size_t(t)];
    const float a_prev = t_prev >= 0 ? alphas_cumprod_[size_t(t_prev)] : final_alpha_cumprod_;
    const float b_t = 1.0f - a_t;
    const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

    const float b_prev = 1.0f - a_prev;
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    const float std_dev = eta_ * std::sqrt(variance);
    const float dir_coeff = std::sqrt(1.0f - a_prev - std_dev * std_dev);
    const float x0_coeff = std::sqrt(a_prev);
    const float clip = float(c_.clip_sample_range);

    const float* m = model_output.f32();
    const float* s = sample.f32();
    const float* z = eta_ > 0 ? noise->f32() : nullptr;
    const bool epsilon = c_.prediction_type == "epsilon", direct = c_.prediction_type == "sample";
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t i = 0; i < n; ++i) {
      float x0, e;
      if (epsilon) {
        x0 = (s[i] - sb * m[i]) / sa;
        e = m[i];
      } else if (direct) {
        x0 = m[i];
        e = (s[i] - sa * x0) / sb;
      } else {  // v_prediction
        x0 = sa * s[i] - sb * m[i];
        e = sa * m[i] + sb * s[i];
      }
      if (c_.clip_sample) x0 = std::min(std::max(x0, -clip), clip);
      float prev = x0_coeff * x0 + dir_coeff * e;
      if (z) prev = prev + std_dev * z[i];
      y[i] = prev;
    }
    ++next_step_;
    return out;
  }

  Tensor add_noise(const Tensor& original, const Tensor& noise, int step_index) const override {
    check(step_index >= 0 && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": add_noise step index out of range");
    const int64_t n = check_same_f32(original, noise, "original", "noise", kName);
    const float a = alphas_cumprod_[size_t(timesteps_[size_t(step_index)])];
    const float sa = std::sqrt(a), sb = std::sqrt(1.0f - a);
    Tensor out = Tensor::empty(original.shape());
    const float *o = original.f32(), *z = noise.f32();
    float* y = out.f32();
    for (int64_t i = 0; i < n; ++i) y[i] = sa * o[i] + sb * z[i];
    return out;
  }

 private:
  SchedulerConfig c_;
  float eta_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_ = 1.0f;
  std::vector<double> timesteps_;
  int num_inference_steps_ = 0;
  int next_step_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_ddim(const SchedulerConfig& c, float eta) { return std::make_unique<DDIM>(c, eta); }

}  // namespace sdpal::sched
