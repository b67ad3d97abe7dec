// Pieces shared by the two Euler schedulers (sigma space, float32 timesteps).
#pragma once
#include <vector>

#include "core/tensor.h"
#include "sched/scheduler.h"

namespace sdpal::sched {

// Error(kUnsupported) unless timestep_spacing is linspace, leading or trailing.
void check_spacing(const SchedulerConfig& c, const char* scheduler);
// Euler's set_timesteps(): float32 timesteps, descending.
std::vector<double> sigma_space_timesteps(const SchedulerConfig& c, int num_inference_steps);
// max(sigmas), or sqrt(max^2 + 1) for "leading" spacing (diffusers' init_noise_sigma).
float sigma_init_noise(const SchedulerConfig& c, const std::vector<float>& sigmas);
// sample /= sqrt(sigma^2 + 1), in place.
void scale_by_sigma(Tensor& sample, float sigma);
// original + noise * sigmas[step_index].
Tensor add_sigma_noise(const Tensor& original, const Tensor& noise, const std::vector<float>& sigmas, int step_index,
                       const char* scheduler);

}  // namespace sdpal::sched
