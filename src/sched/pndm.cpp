// PNDMScheduler. In PLMS mode (skip_prk_steps = true, SD v1's default) the first step is taken
// twice: once from x_t with eps_t, then again from x_t with the mean of eps_t and the model
// output at the first estimate, so N steps cost N + 1 UNet calls. Without skip_prk_steps (the
// class default, e.g. when swapping from a DDIM config) three Runge-Kutta steps of four calls
// each warm up the history first: N steps cost N + 9 calls.
#include <cmath>
#include <deque>

#include "core/error.h"
#include "sched/factories.h"
#include "sched/noise_schedule.h"

namespace sdpal::sched {
namespace {

constexpr const char* kName = "PNDMScheduler";

class PNDM final : public Scheduler {
 public:
  explicit PNDM(const SchedulerConfig& c) : c_(c) {
    require(c.prediction_type == "epsilon" || c.prediction_type == "v_prediction", kName, "prediction_type",
            c.prediction_type);
    require(c.timestep_spacing == "leading" || c.timestep_spacing == "trailing" || c.timestep_spacing == "linspace",
            kName, "timestep_spacing", c.timestep_spacing);
    alphas_cumprod_ = cumprod_alphas(make_betas(c));
    final_alpha_cumprod_ = c.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
  }

  std::string name() const override { return kName; }
  float init_noise_sigma() const override { return 1.0f; }
  const std::vector<double>& timesteps() const override { return timesteps_; }

  void set_timesteps(int n) override {
    check_num_steps(n, c_, kName);
    const int N = c_.num_train_timesteps;
    std::vector<int64_t> ts;  // ascending, like diffusers' _timesteps
    if (c_.timestep_spacing == "linspace") {
      for (double v : np_linspace(0, N - 1, n)) ts.push_back(int64_t(np_round(v)));
    } else if (c_.timestep_spacing == "leading") {
      const int64_t ratio = N / n;
      for (int64_t i = 0; i < n; ++i) ts.push_back(i * ratio + c_.steps_offset);
    } else {
      const std::vector<double> a = np_arange(N, 0, -double(N) / n);
      for (auto it = a.rbegin(); it != a.rend(); ++it) ts.push_back(int64_t(np_round(*it)) - 1);
    }
    for (int64_t t : ts) check_train_timestep(t, c_, kName);
    timesteps_.clear();
    prk_steps_ = 0;
    if (c_.skip_prk_steps) {
      // plms = reversed(ts[:-1] + ts[-2:-1] + ts[-1:]): the second-largest timestep repeats.
      std::vector<int64_t> plms(ts.begin(), ts.end() - 1);
      if (ts.size() >= 2) plms.push_back(ts[ts.size() - 2]);
      plms.push_back(ts.back());
      timesteps_.assign(plms.rbegin(), plms.rend());
    } else {
      check(ts.size() >= 4, ErrorCode::kInvalidArgument,
            std::string(kName) + ": the Runge-Kutta warm-up (skip_prk_steps false) needs at least 4 steps, got " +
                std::to_string(n));
      // Each of the top four timesteps and its half-step point; pairs overlap, largest first.
      const int64_t half = N / n / 2;
      std::vector<int64_t> p;
      for (size_t i = ts.size() - 4; i < ts.size(); ++i) {
        p.push_back(ts[i]);
        p.push_back(ts[i] + half);
      }
      std::vector<int64_t> prk;  // p[:-1].repeat(2)[1:-1]
      for (size_t i = 0; i + 1 < p.size(); ++i) prk.insert(prk.end(), 2, p[i]);
      prk = std::vector<int64_t>(prk.begin() + 1, prk.end() - 1);
      timesteps_.assign(prk.rbegin(), prk.rend());
      prk_steps_ = int(prk.size());
      for (size_t i = ts.size() - 3; i-- > 0;) timesteps_.push_back(double(ts[i]));
    }
    for (double t : timesteps_) check_train_timestep(int64_t(t), c_, kName);
    num_inference_steps_ = n;
    counter_ = 0;
    ets_.clear();
    cur_sample_ = Tensor();
    rk_sum_ = Tensor();
  }

  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample, const Tensor*) override {
    check(!timesteps_.empty(), ErrorCode::kInvalidArgument, std::string(kName) + ": call set_timesteps() first");
    check(step_index == counter_ && step_index < int(timesteps_.size()), ErrorCode::kInvalidArgument,
          std::string(kName) + ": step " + std::to_string(step_index) + " out of order (expected " +
              std::to_string(counter_) + " of " + std::to_string(timesteps_.size()) + ")");
    const int64_t numel = check_same_f32(model_output, sample, "model_output", "sample", kName);
    if (counter_ < prk_steps_) return step_prk(model_output, sample);
    const int64_t ratio = c_.num_train_timesteps / num_inference_steps_;
    int64_t timestep = int64_t(timesteps_[size_t(step_index)]);
    int64_t prev_timestep = timestep - ratio;
    if (counter_ != 1) {
      if (ets_.size() > 3) ets_.pop_front();
      ets_.push_back(model_output.clone());
    } else {
      prev_timestep = timestep;
      timestep = timestep + ratio;
    }

    Tensor eps = Tensor::empty(sample.shape());
    const Tensor* x = &sample;
    float* e = eps.f32();
    const float* m = model_output.f32();
    const size_t k = ets_.size();
    if (k == 1 && counter_ == 0) {
      std::copy(m, m + numel, e);
      cur_sample_ = sample.clone();
    } else if (k == 1 && counter_ == 1) {
      const float* e1 = ets_[0].f32();
      for (int64_t i = 0; i < numel; ++i) e[i] = (m[i] + e1[i]) / 2.0f;
      x = &cur_sample_;
    } else if (k == 2) {
      const float *e1 = ets_[1].f32(), *e2 = ets_[0].f32();
      for (int64_t i = 0; i < numel; ++i) e[i] = (3.0f * e1[i] - e2[i]) / 2.0f;
    } else if (k == 3) {
      const float *e1 = ets_[2].f32(), *e2 = ets_[1].f32(), *e3 = ets_[0].f32();
      for (int64_t i = 0; i < numel; ++i) e[i] = (23.0f * e1[i] - 16.0f * e2[i] + 5.0f * e3[i]) / 12.0f;
    } else {
      const float *e1 = ets_[3].f32(), *e2 = ets_[2].f32(), *e3 = ets_[1].f32(), *e4 = ets_[0].f32();
      const float c = float(1.0 / 24.0);  // Python's 1/24, cast to the tensor's float32
      for (int64_t i = 0; i < numel; ++i)
        e[i] = c * (55.0f * e1[i] - 59.0f * e2[i] + 37.0f * e3[i] - 9.0f * e4[i]);
    }
    Tensor prev = prev_sample(*x, timestep, prev_timestep, eps);
    if (k == 1 && counter_ == 1) cur_sample_ = Tensor();
    ++counter_;
    return prev;
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
  // One of the Runge-Kutta calls: 1/6, 1/3, 1/3, 1/6 weights over each group of four.
  Tensor step_prk(const Tensor& model_output, const Tensor& sample) {
    const int64_t n = sample.numel();
    const int phase = counter_ % 4;
    const int64_t half = c_.num_train_timesteps / num_inference_steps_ / 2;
    const int64_t prev_timestep = int64_t(timesteps_[size_t(counter_)]) - (counter_ % 2 ? 0 : half);
    const int64_t timestep = int64_t(timesteps_[size_t(counter_ / 4 * 4)]);
    const float* m = model_output.f32();
    const float sixth = float(1.0 / 6.0), third = float(1.0 / 3.0);
    Tensor eps = model_output.clone();
    if (phase == 0) {
      rk_sum_ = Tensor::empty(sample.shape());
      for (int64_t i = 0; i < n; ++i) rk_sum_.f32()[i] = sixth * m[i];
      ets_.push_back(model_output.clone());
      cur_sample_ = sample.clone();
    } else if (phase == 3) {
      for (int64_t i = 0; i < n; ++i) eps.f32()[i] = rk_sum_.f32()[i] + sixth * m[i];
    } else {
      for (int64_t i = 0; i < n; ++i) rk_sum_.f32()[i] = rk_sum_.f32()[i] + third * m[i];
    }
    Tensor prev = prev_sample(cur_sample_, timestep, prev_timestep, eps);
    ++counter_;
    return prev;
  }

  // diffusers' _get_prev_sample (formula (9) of the PNDM paper), float32 as torch does it.
  Tensor prev_sample(const Tensor& sample, int64_t t, int64_t t_prev, Tensor& eps) const {
    check_train_timestep(t, c_, kName);
    const float a_t = alphas_cumprod_[size_t(t)];
    const float a_prev = t_prev >= 0 ? alphas_cumprod_[size_t(t_prev)] : final_alpha_cumprod_;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const int64_t n = sample.numel();
    const float* s = sample.f32();
    float* e = eps.f32();
    if (c_.prediction_type == "v_prediction") {
      const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);
      for (int64_t i = 0; i < n; ++i) e[i] = sa * e[i] + sb * s[i];
    }
    const float sample_coeff = std::sqrt(a_prev / a_t);
    const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
    const float diff = a_prev - a_t;
    Tensor out = Tensor::empty(sample.shape());
    float* y = out.f32();
    for (int64_t i = 0; i < n; ++i) y[i] = sample_coeff * s[i] - diff * e[i] / denom;
    return out;
  }

  SchedulerConfig c_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_ = 1.0f;
  std::vector<double> timesteps_;
  int num_inference_steps_ = 0;
  int counter_ = 0;
  int prk_steps_ = 0;  // leading Runge-Kutta calls in timesteps_ (0 in PLMS mode)
  Tensor rk_sum_;      // the running Runge-Kutta combination of the current group
  std::deque<Tensor> ets_;  // the last four model outputs (diffusers keeps ets[-3:] + new)
  Tensor cur_sample_;
};

}  // namespace

std::unique_ptr<Scheduler> make_pndm(const SchedulerConfig& c) { return std::make_unique<PNDM>(c); }

}  // namespace sdpal::sched
