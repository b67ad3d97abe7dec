// Normalizations over channels-last data, with optional fused SiLU (as every SD ResNet block uses).
// Statistics are accumulated in double (per-channel sums about a shift, combined per group with
// Chan's parallel-variance formula), so results match torch's fp32 Welford to float rounding.
#pragma once
#include <cstdint>

namespace sdpal::cpu {

// x, out: [N, HW, C]; statistics per (n, group) over HW x (C / groups); gamma, beta: [C], or
// nullptr for 1 / 0 (affine=False). Biased variance, as torch. out may alias x.
void group_norm(const float* x, float* out, int64_t n, int64_t hw, int64_t c, int64_t groups,
                const float* gamma, const float* beta, float eps, bool silu);

// x, out: [rows, C]; normalized over C. gamma, beta: [C] or nullptr. out may alias x.
void layer_norm(const float* x, float* out, int64_t rows, int64_t c, const float* gamma, const float* beta,
                float eps);

}  // namespace sdpal::cpu
