#include "rng/cephes_avx.h"

#include <bit>
#include <cmath>
#include <cstdint>

// Every product/sum below is its own statement and every fusion is an explicit std::fma: ISO
// C++ mode (CMAKE_CXX_EXTENSIONS OFF) keeps GCC from contracting, and clang only contracts
// within one expression. Contraction here would break bit-exactness (the goldens catch it).

namespace sdpal::cephes_avx {

namespace {

inline uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
inline float from_bits(uint32_t u) { return std::bit_cast<float>(u); }

// The header spells these as double literals stored into float arrays, so round via double.
constexpr float kSqrtHalf = float(0.707106781186547524);
constexpr float kLogP[9] = {float(7.0376836292E-2),  float(-1.1514610310E-1), float(1.1676998740E-1),
                            float(-1.2420140846E-1), float(+1.4249322787E-1), float(-1.6668057665E-1),
                            float(+2.0000714765E-1), float(-2.4999993993E-1), float(+3.3333331174E-1)};
constexpr float kLogQ1 = float(-2.12194440e-4);  // log(2) = Q2 + Q1, split for exact e*Q2
constexpr float kLogQ2 = float(0.693359375);

constexpr float kFourOverPi = float(1.27323954473516);
// -pi/4 split in three so that j*DP1 and j*DP2 are exact ("extended precision modular arithmetic").
constexpr float kMinusDP1 = float(-0.78515625);
constexpr float kMinusDP2 = float(-2.4187564849853515625e-4);
constexpr float kMinusDP3 = float(-3.77489497744594108e-8);
constexpr float kSinP[3] = {float(-1.9515295891E-4), float(8.3321608736E-3), float(-1.6666654611E-1)};
constexpr float kCosP[3] = {float(2.443315711809948E-005), float(-1.388731625493765E-003),
                            float(4.166664568298827E-002)};

constexpr uint32_t kSignMask = 0x80000000u;
constexpr uint32_t kExpMask = 0x7f800000u;
constexpr float kMinNormPos = std::bit_cast<float>(0x00800000u);

}  // namespace

float log(float x) {
  const bool invalid = x <= 0.0f;           // _CMP_LE_OS: false for NaN
  x = (x > kMinNormPos) ? x : kMinNormPos;  // _mm256_max_ps(x, min_norm): the second operand on ties/NaN
  int32_t exponent = int32_t(bits(x) >> 23);
  x = from_bits((bits(x) & ~kExpMask) | bits(0.5f));  // mantissa in [0.5, 1)
  exponent -= 0x7f;
  float e = float(exponent);
  e = e + 1.0f;

  // if (x < sqrt(1/2)) { e -= 1; x = x + x - 1; } else { x = x - 1; }, branch-free as in the vector code.
  const bool small = x < kSqrtHalf;
  const float tmp = small ? x : 0.0f;
  x = x - 1.0f;
  e = e - (small ? 1.0f : 0.0f);
  x = x + tmp;

  const float z = x * x;
  float y = kLogP[0];
  for (int k = 1; k < 9; ++k) y = std::fma(y, x, kLogP[k]);  // mul+add pairs fused by GCC
  y = y * x;
  const float eq1 = e * kLogQ1;
  y = std::fma(y, z, eq1);         // y*z + e*Q1: GCC fuses the first product
  y = std::fma(-z, 0.5f, y);       // y - z*0.5 (z*0.5 is exact, fused or not)
  x = x + y;
  x = std::fma(e, kLogQ2, x);      // x + e*Q2 (e*Q2 is exact)
  return invalid ? from_bits(0xffffffffu) : x;
}

void sincos(float x, float* sin_out, float* cos_out) {
  uint32_t sign_sin = bits(x) & kSignMask;
  x = from_bits(bits(x) & ~kSignMask);

  float y = x * kFourOverPi;
  int32_t j = int32_t(y);  // _mm256_cvttps_epi32 truncates
  j = (j + 1) & ~1;        // round to an even octant
  y = float(j);

  const uint32_t swap_sign_sin = uint32_t(j & 4) << 29;
  const bool sin_poly_is_sine = (j & 2) == 0;  // octants where sin uses the sine polynomial

  x = std::fma(y, kMinusDP1, x);
  x = std::fma(y, kMinusDP2, x);
  x = std::fma(y, kMinusDP3, x);

  const uint32_t sign_cos = uint32_t(~(j - 2) & 4) << 29;
  sign_sin ^= swap_sign_sin;

  const float z = x * x;
  // Cosine polynomial on [-pi/4, pi/4]: 1 - z/2 + z^2 * P(z).
  float yc = std::fma(kCosP[0], z, kCosP[1]);
  yc = std::fma(yc, z, kCosP[2]);
  yc = yc * z;
  const float half_z = z * 0.5f;
  yc = std::fma(yc, z, -half_z);  // yc*z - z*0.5 with the product fused
  yc = yc + 1.0f;
  // Sine polynomial: x + x * z * Q(z).
  float ys = std::fma(kSinP[0], z, kSinP[1]);
  ys = std::fma(ys, z, kSinP[2]);
  ys = ys * z;
  ys = std::fma(ys, x, x);

  // The vector code selects with masks and then adds: one operand is +0, which also turns -0 into +0.
  const float sin_from_sine = sin_poly_is_sine ? ys : 0.0f;
  const float sin_from_cosine = sin_poly_is_sine ? 0.0f : yc;
  const float ys_rest = ys - sin_from_sine;
  const float yc_rest = yc - sin_from_cosine;
  const float s = sin_from_cosine + sin_from_sine;
  const float c = yc_rest + ys_rest;
  *sin_out = from_bits(bits(s) ^ sign_sin);
  *cos_out = from_bits(bits(c) ^ sign_cos);
}

}  // namespace sdpal::cephes_avx
