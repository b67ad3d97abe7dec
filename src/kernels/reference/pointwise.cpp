#include "kernels/reference/pointwise.h"

#include <cmath>

namespace sdpal::ref {

void group_norm(const float* x, float* out, int64_t n, int64_t hw, int64_t c, int64_t groups, const float* gamma,
                const float* beta, float eps, bool act) {
  const int64_t cg = c / groups;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      const float* xb = x + b * hw * c;
      double sum = 0;
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) sum += xb[p * c + ch];
      const double mean = sum / double(hw * cg);
      double m2 = 0;
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) m2 += (xb[p * c + ch] - mean) * (xb[p * c + ch] - mean);
      const double rstd = 1.0 / std::sqrt(m2 / double(hw * cg) + double(eps));
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
          double y = (xb[p * c + ch] - mean) * rstd * (gamma ? gamma[ch] : 1.0) + (beta ? beta[ch] : 0.0);
          if (act) y = y / (1.0 + std::exp(-y));
          out[(b * hw + p) * c + ch] = float(y);
        }
    }
}

void layer_norm(const float* x, float* out, int64_t rows, int64_t c, const float* gamma, const float* beta,
                float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    double sum = 0;
    for (int64_t i = 0; i < c; ++i) sum += xr[i];
    const double mean = sum / double(c);
    double m2 = 0;
    for (int64_t i = 0; i < c; ++i) m2 += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1.0 / std::sqrt(m2 / double(c) + double(eps));
    for (int64_t i = 0; i < c; ++i)
      out[r * c + i] = float((xr[i] - mean) * rstd * (gamma ? gamma[i] : 1.0) + (beta ? beta[i] : 0.0));
  }
}

float silu(float x) { return float(double(x) / (1.0 + std::exp(-double(x)))); }
float gelu(float x) { return float(0.5 * double(x) * (1.0 + std::erf(double(x) / std::sqrt(2.0)))); }
float quick_gelu(float x) { return float(double(x) / (1.0 + std::exp(-1.702 * double(x)))); }

void geglu(const float* x, float* out, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < d; ++j) out[r * d + j] = float(double(x[r * 2 * d + j]) * double(gelu(x[r * 2 * d + d + j])));
}

void upsample_nearest2x(const float* x, float* out, int64_t n, int64_t h, int64_t w, int64_t c) {
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < 2 * h; ++y)
      for (int64_t xx = 0; xx < 2 * w; ++xx)
        for (int64_t ch = 0; ch < c; ++ch)
          out[((b * 2 * h + y) * 2 * w + xx) * c + ch] = x[((b * h + y / 2) * w + xx / 2) * c + ch];
}

}  // namespace sdpal::ref
