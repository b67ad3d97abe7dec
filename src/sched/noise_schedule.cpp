#include "sched/noise_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace sdpal::sched {
namespace {

// torch.linspace(start, end, n, dtype=float32) on the CPU: float step, and each value is
// start + step*i (first half) or end - step*(n-1-i) (second half) with one rounding, as the
// vectorised kernel computes it with fused multiply-add.
std::vector<float> torch_linspace_f32(double start_d, double end_d, int n) {
  const float start = float(start_d), end = float(end_d);
  std::vector<float> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / float(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i)
    out[size_t(i)] = i < halfway ? std::fma(step, float(i), start) : std::fma(-step, float(n - 1 - i), end);
  return out;
}

// diffusers' betas_for_alpha_bar with the cosine transform, in Python floats.
std::vector<float> cosine_betas(int n) {
  auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
    return c * c;
  };
  std::vector<float> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const double t1 = double(i) / n, t2 = double(i + 1) / n;
    out[size_t(i)] = float(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return out;
}

// diffusers' rescale_zero_terminal_snr, float32 tensor ops in the same order.
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  std::vector<float> s = cumprod_alphas(betas);
  for (float& v : s) v = std::sqrt(v);
  const float s0 = s.front(), sT = s.back();
  const float scale = s0 / (s0 - sT);
  for (float& v : s) v = (v - sT) * scale;
  std::vector<float> bar(s.size());
  for (size_t i = 0; i < s.size(); ++i) bar[i] = s[i] * s[i];
  std::vector<float> out(s.size());
  out[0] = 1.0f - bar[0];
  for (size_t i = 1; i < s.size(); ++i) out[i] = 1.0f - bar[i] / bar[i - 1];
  return out;
}

}  // namespace

std::vector<float> make_betas(const SchedulerConfig& c) {
  std::vector<float> betas;
  if (c.trained_betas) {
    check(int(c.trained_betas->size()) == c.num_train_timesteps, ErrorCode::kFormat,
          "scheduler config: trained_betas has " + std::to_string(c.trained_betas->size()) +
              " values but num_train_timesteps is " + std::to_string(c.num_train_timesteps));
    for (double b : *c.trained_betas) betas.push_back(float(b));
  } else if (c.beta_schedule == "linear") {
    betas = torch_linspace_f32(c.beta_start, c.beta_end, c.num_train_timesteps);
  } else if (c.beta_schedule == "scaled_linear") {
    betas = torch_linspace_f32(std::sqrt(c.beta_start), std::sqrt(c.beta_end), c.num_train_timesteps);
    for (float& b : betas) b = b * b;
  } else if (c.beta_schedule == "squaredcos_cap_v2") {
    betas = cosine_betas(c.num_train_timesteps);
  } else {
    fail(ErrorCode::kUnsupported, "scheduler config: beta_schedule '" + c.beta_schedule +
                                      "' is not supported (linear, scaled_linear, squaredcos_cap_v2)");
  }
  if (c.rescale_betas_zero_snr && c.kind != SamplerKind::PNDM) betas = rescale_zero_terminal_snr(betas);
  return betas;
}

std::vector<float> cumprod_alphas(const std::vector<float>& betas) {
  std::vector<float> out(betas.size());
  double acc = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) {
    acc *= double(1.0f - betas[i]);
    out[i] = float(acc);
  }
  return out;
}

std::vector<float> train_sigmas(const std::vector<float>& alphas_cumprod) {
  std::vector<float> out(alphas_cumprod.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::sqrt((1.0f - alphas_cumprod[i]) / alphas_cumprod[i]);
  return out;
}

std::vector<float> log_of(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::log(v[i]);
  return out;
}

double np_round(double x) { return std::nearbyint(x); }  // default rounding mode: half to even

std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> y;
  if (num <= 0) return y;
  y.resize(size_t(num));
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div == 0) {
    y[0] = 0.0 * delta + start;
    return y;
  }
  const double step = delta / double(div);
  for (int64_t i = 0; i < num; ++i) {
    const double scaled = step == 0 ? double(i) / double(div) * delta : double(i) * step;
    y[size_t(i)] = scaled + start;
  }
  y.back() = stop;
  return y;
}

std::vector<double> np_arange(double start, double stop, double step) {
  std::vector<double> y;
  const double len = std::ceil((stop - start) / step);
  if (!(len > 0)) return y;
  y.resize(size_t(len));
  y[0] = start;
  if (y.size() > 1) y[1] = start + step;
  const double delta = (y.size() > 1 ? y[1] : start) - start;  // numpy's fill() steps by this
  for (size_t i = 2; i < y.size(); ++i) y[i] = start + double(i) * delta;
  return y;
}

double np_interp(double x, const std::vector<float>& fp) {
  const int64_t n = int64_t(fp.size());
  if (std::isnan(x)) return x;
  if (x < 0) return fp.front();
  if (x >= double(n - 1)) return fp.back();
  const int64_t j = int64_t(std::floor(x));
  if (double(j) == x) return fp[size_t(j)];
  const double slope = (double(fp[size_t(j + 1)]) - double(fp[size_t(j)])) / 1.0;
  return slope * (x - double(j)) + double(fp[size_t(j)]);
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n) {
  const double rho = 7.0;
  const std::vector<double> ramp = np_linspace(0, 1, n);
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> out(ramp.size());
  for (size_t i = 0; i < ramp.size(); ++i) out[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
  return out;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  // numpy 1.26 value-based casting: a float64 scalar minus a float32 array is float32.
  const float log_sigma_f = float(log_sigma);
  const int64_t n = int64_t(log_sigmas.size());
  int64_t low = 0;  // argmax of the cumulative count of dists >= 0: the last such index
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma_f - log_sigmas[size_t(i)] >= 0.0f) low = i;
  low = std::min(low, n - 2);
  const int64_t high = low + 1;
  const float lo = log_sigmas[size_t(low)], hi = log_sigmas[size_t(high)];
  double w = (double(lo) - log_sigma) / double(lo - hi);  // scalars: float64 over a float32 difference
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * double(low) + w * double(high);
}

void check_num_steps(int num_inference_steps, const SchedulerConfig& c, const char* scheduler) {
  check(num_inference_steps >= 1, ErrorCode::kInvalidArgument,
        std::string(scheduler) + ": num_inference_steps must be at least 1, got " + std::to_string(num_inference_steps));
  check(num_inference_steps <= c.num_train_timesteps, ErrorCode::kInvalidArgument,
        std::string(scheduler) + ": num_inference_steps " + std::to_string(num_inference_steps) +
            " cannot exceed num_train_timesteps " + std::to_string(c.num_train_timesteps));
}

void require(bool supported, const char* scheduler, const std::string& key, const std::string& value) {
  if (!supported)
    fail(ErrorCode::kUnsupported, std::string(scheduler) + ": scheduler config " + key + " = " + value + " is not supported");
}

void check_train_timestep(int64_t t, const SchedulerConfig& c, const char* scheduler) {
  check(t >= 0 && t < c.num_train_timesteps, ErrorCode::kInvalidArgument,
        std::string(scheduler) + ": timestep_spacing '" + c.timestep_spacing + "' gives timestep " + std::to_string(t) +
            ", outside [0, " + std::to_string(c.num_train_timesteps) + ")");
}

int64_t check_same_f32(const Tensor& a, const Tensor& b, const char* what_a, const char* what_b, const char* scheduler) {
  check(a.dtype() == DType::F32 && b.dtype() == DType::F32, ErrorCode::kInvalidArgument,
        std::string(scheduler) + ": " + what_a + " and " + what_b + " must be float32");
  check(a.shape() == b.shape(), ErrorCode::kInvalidArgument,
        std::string(scheduler) + ": " + what_a + " shape " + shape_str(a.shape()) + " differs from " + what_b + " shape " +
            shape_str(b.shape()));
  return a.numel();
}

}  // namespace sdpal::sched
