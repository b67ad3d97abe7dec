// Shared pieces of the schedulers, each reproducing the torch (float32) or numpy (float64)
// computation diffusers uses, so that timesteps come out identical and sigmas to the ulp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sched/scheduler.h"

// Element-wise steps must round after every operation as torch does: no a*b+c fusion into
// FMA (g++ contracts by default when the target has FMA, even in ISO mode).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace sdpal::sched {

// betas (torch float32) for beta_schedule / trained_betas, then the optional zero-terminal-SNR
// rescale. Error(kUnsupported) for an unknown schedule, naming it.
std::vector<float> make_betas(const SchedulerConfig& c);
// torch.cumprod(1 - betas): torch accumulates in double on the CPU and rounds each output.
std::vector<float> cumprod_alphas(const std::vector<float>& betas);
// ((1 - a) / a) ** 0.5 in float32, index = train timestep.
std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod);

// numpy helpers (float64).
double np_round(double x);  // half to even
std::vector<double> np_linspace(double start, double stop, int64_t num);
std::vector<double> np_arange(double start, double stop, double step);
// np.interp(x, arange(len(fp)), fp).
double np_interp(double x, const std::vector<float>& fp);
// Karras et al. (rho = 7) sigmas from sigma_max down to sigma_min, float64.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n);
// diffusers' _sigma_to_t: fractional train timestep of `sigma`, with numpy 1.26's mixed
// float32/float64 arithmetic. log_sigmas is np.log of the float32 train sigmas.
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);
std::vector<float> log_of(const std::vector<float>& v);

// Argument checks shared by every set_timesteps().
void check_num_steps(int num_inference_steps, const SchedulerConfig& c, const char* scheduler);
// Error(kUnsupported) naming the config key when `supported` is false.
void require(bool supported, const char* scheduler, const std::string& key, const std::string& value);
// An int timestep used to index alphas_cumprod must lie in [0, num_train_timesteps).
void check_train_timestep(int64_t t, const SchedulerConfig& c, const char* scheduler);

// Shape and type checks of step() arguments; returns numel.
int64_t check_same_f32(const Tensor& a, const Tensor& b, const char* what_a, const char* what_b, const char* scheduler);

}  // namespace sdpal::sched
