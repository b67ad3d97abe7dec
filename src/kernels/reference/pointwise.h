// Naive, obviously-correct normalizations and element-wise ops (double precision, libm erf/exp)
// that the fast kernels are tested against. For tests only.
#pragma once
#include <cstdint>

namespace sdpal::ref {

// Two-pass mean / biased variance per (n, group); x, out: [n, hw, c]; gamma, beta may be nullptr.
void group_norm(const float* x, float* out, int64_t n, int64_t hw, int64_t c, int64_t groups, const float* gamma,
                const float* beta, float eps, bool silu);
void layer_norm(const float* x, float* out, int64_t rows, int64_t c, const float* gamma, const float* beta,
                float eps);

float silu(float x);
float gelu(float x);  // 0.5 x (1 + erf(x / sqrt 2)), in double
float quick_gelu(float x);
void geglu(const float* x, float* out, int64_t rows, int64_t d);
void upsample_nearest2x(const float* x, float* out, int64_t n, int64_t h, int64_t w, int64_t c);

}  // namespace sdpal::ref
