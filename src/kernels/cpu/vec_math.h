// Branch-free scalar math written so GCC vectorizes loops that call it (no libm calls, no
// data-dependent branches). Internal to src/kernels/cpu.
//
// Accuracy: exp_f32 is within ~1e-7 relative of exp over [-87, 88] (inputs are clamped there);
// erf_f32 is Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7), the formula torch's vectorized CPU
// erf uses, so GELU matches torch's CPU kernel to rounding.
#pragma once
#include <bit>
#include <cstdint>

// Compiles a function for the AVX-512 subset in CpuFeatures::avx512_core(); inlined helpers from
// this header are vectorized with it.
#define SDPAL_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define SDPAL_INLINE inline __attribute__((always_inline))

namespace sdpal::cpu::vm {

SDPAL_INLINE float clampf(float x, float lo, float hi) {
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}

SDPAL_INLINE float exp_f32(float x) {
  x = clampf(x, -87.0f, 88.0f);
  // n = round(x / ln2) via the 1.5 * 2^23 trick (default round-to-nearest mode).
  const float magic = 12582912.0f;
  float n = (x * 1.44269504f + magic) - magic;
  // Cody-Waite: ln2 split in a part with few mantissa bits (n * hi exact) and the rest.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // exp(r) on [-ln2/2, ln2/2]: least-squares fit in relative error, degree 6.
  float p = 0.00137514086f;
  p = p * r + 0.00836891867f;
  p = p * r + 0.0416695327f;
  p = p * r + 0.166665182f;
  p = p * r + 0.499999881f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  float scale = std::bit_cast<float>(uint32_t(int32_t(n) + 127) << 23);
  return p * scale;
}

SDPAL_INLINE float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

SDPAL_INLINE float silu_f32(float x) { return x / (1.0f + exp_f32(-x)); }

SDPAL_INLINE float erf_f32(float x) {
  uint32_t sign = std::bit_cast<uint32_t>(x) & 0x80000000u;
  float a = std::bit_cast<float>(std::bit_cast<uint32_t>(x) & 0x7fffffffu);
  float t = 1.0f / (0.3275911f * a + 1.0f);
  float r = 1.061405429f;
  r = r * t + -1.453152027f;
  r = r * t + 1.421413741f;
  r = r * t + -0.284496736f;
  r = r * t + 0.254829592f;
  float y = 1.0f - r * t * exp_f32(-(x * x));
  return std::bit_cast<float>(std::bit_cast<uint32_t>(y) ^ sign);
}

// GELU with erf, as torch.nn.functional.gelu(approximate="none").
SDPAL_INLINE float gelu_f32(float x) { return x * 0.5f * (1.0f + erf_f32(x * 0.707106781f)); }

// CLIP's activation: x * sigmoid(1.702 x).
SDPAL_INLINE float quick_gelu_f32(float x) { return x * sigmoid_f32(1.702f * x); }

}  // namespace sdpal::cpu::vm
