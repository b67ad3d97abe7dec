// Element-wise kernels. Activations follow torch's definitions (GELU uses erf, computed with the
// same Abramowitz & Stegun formula as torch's vectorized CPU kernel). Large inputs are split
// across threads; every function accepts n == 0.
#pragma once
#include <cstdint>

namespace sdpal::cpu {

void silu(float* x, int64_t n);
void gelu(float* x, int64_t n);        // exact (erf) GELU
void quick_gelu(float* x, int64_t n);  // x * sigmoid(1.702 x), CLIP's activation
// GEGLU: x is [rows, 2*d]; out[r, j] = x[r, j] * gelu(x[r, d + j]); out is [rows, d].
void geglu(const float* x, float* out, int64_t rows, int64_t d);
void add(const float* a, const float* b, float* out, int64_t n);  // out may alias a or b
void scale(float* x, float s, int64_t n);
// Nearest-neighbour 2x upsample, NHWC: [N, H, W, C] -> [N, 2H, 2W, C].
void upsample_nearest2x(const float* x, float* out, int64_t n, int64_t h, int64_t w, int64_t c);

}  // namespace sdpal::cpu
