// Bit-exact scalar twins of the logarithm and sine/cosine that torch's AVX2 normal sampler
// (normal_fill_16_AVX2) calls: ATen/native/cpu/avx_mathfun.h, Giovanni Garberoglio's AVX port of
// Julien Pommier's sse_mathfun, itself the Cephes single-precision algorithms (not SLEEF).
//
// Each function repeats the vector code's float operations lane by lane, in the same order.
// torch's Linux wheels are built by GCC with -mfma and GNU's default -ffp-contract=fast, so
// some _mm256_mul_ps/_mm256_add_ps pairs become fused multiply-adds in the shipped binary;
// we call std::fma exactly there (found by comparing against torch 2.5.1 over 2^20 samples).
#pragma once

namespace sdpal::cephes_avx {

// log256_ps for one lane: natural log; NaN for x <= 0.
float log(float x);

// sincos256_ps for one lane. Accurate for |x| < 8192 (the sampler only passes [0, 2*pi)).
void sincos(float x, float* sin_out, float* cos_out);

}  // namespace sdpal::cephes_avx
