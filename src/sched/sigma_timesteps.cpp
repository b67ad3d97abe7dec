#include "sched/sigma_timesteps.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sched/noise_schedule.h"

namespace sdpal::sched {

void check_spacing(const SchedulerConfig& c, const char* scheduler) {
  require(c.timestep_spacing == "leading" || c.timestep_spacing == "trailing" || c.timestep_spacing == "linspace",
          scheduler, "timestep_spacing", c.timestep_spacing);
}

std::vector<double> sigma_space_timesteps(const SchedulerConfig& c, int n) {
  const int N = c.num_train_timesteps;
  std::vector<double> ts;
  if (c.timestep_spacing == "linspace") {
    // np.linspace(0, N - 1, n, dtype=float32): computed in float64, then rounded to float32.
    const std::vector<double> v = np_linspace(0, N - 1, n);
    for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(double(float(*it)));
  } else if (c.timestep_spacing == "leading") {
    const int64_t ratio = N / n;
    for (int64_t i = n - 1; i >= 0; --i) ts.push_back(double(float(i * ratio) + float(c.steps_offset)));
  } else {
    for (double v : np_arange(N, 0, -double(N) / n)) ts.push_back(double(float(np_round(v)) - 1.0f));
  }
  return ts;
}

float sigma_init_noise(const SchedulerConfig& c, const std::vector<float>& sigmas) {
  if (sigmas.empty()) return 1.0f;
  const float max_sigma = *std::max_element(sigmas.begin(), sigmas.end());
  if (c.timestep_spacing == "linspace" || c.timestep_spacing == "trailing") return max_sigma;
  return std::sqrt(max_sigma * max_sigma + 1.0f);
}

void scale_by_sigma(Tensor& sample, float sigma) {
  check(sample.dtype() == DType::F32, ErrorCode::kInvalidArgument, "scale_model_input: sample must be float32");
  const float d = std::sqrt(sigma * sigma + 1.0f);
  float* x = sample.f32();
  for (int64_t i = 0, n = sample.numel(); i < n; ++i) x[i] = x[i] / d;
}

Tensor add_sigma_noise(const Tensor& original, const Tensor& noise, const std::vector<float>& sigmas, int step_index,
                       const char* scheduler) {
  check(step_index >= 0 && size_t(step_index) + 1 < sigmas.size(), ErrorCode::kInvalidArgument,
        std::string(scheduler) + ": add_noise step index out of range");
  const int64_t n = check_same_f32(original, noise, "original", "noise", scheduler);
  const float sigma = sigmas[size_t(step_index)];
  Tensor out = Tensor::empty(original.shape());
  const float *o = original.f32(), *z = noise.f32();
  float* y = out.f32();
  for (int64_t i = 0; i < n; ++i) y[i] = o[i] + z[i] * sigma;
  return out;
}

}  // namespace sdpal::sched
