// AVX-512 pieces shared by the fp32 and bf16 flash-attention kernels: tail masks, exp, and the
// online-softmax update of one score row. Internal to src/kernels/cpu; include only from files
// whose callers run on avx512_core CPUs (functions are compiled with SDPAL_TARGET_AVX512).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace sdpal::cpu::attention_detail {

#define TGT SDPAL_TARGET_AVX512

TGT inline __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// exp for x <= 0 (inputs below -87 give ~1e-38, never a denormal or NaN); ~1e-7 relative error.
TGT inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(0.00137514086f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00836891867f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0416695327f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.166665182f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.499999881f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Online-softmax update of one row: p = exp(s - m_new) over the first `valid` of `width` scores
// (the rest become 0); returns the factor by which the old O and l must be scaled.
TGT inline float softmax_row(float* s, int64_t valid, int64_t width, float& m, float& l) {
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t c = 0; c < valid; c += 16)
    vmax = _mm512_mask_max_ps(vmax, tail_mask(valid - c), vmax, _mm512_load_ps(s + c));
  const float m_new = std::max(m, _mm512_reduce_max_ps(vmax));
  const float corr = m == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(m - m_new);
  const __m512 vm = _mm512_set1_ps(m_new);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t c = 0; c < width; c += 16) {
    __m512 e = _mm512_maskz_mov_ps(tail_mask(valid - c), exp512(_mm512_sub_ps(_mm512_load_ps(s + c), vm)));
    _mm512_store_ps(s + c, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  l = l * corr + _mm512_reduce_add_ps(vsum);
  m = m_new;
  return corr;
}

#undef TGT

}  // namespace sdpal::cpu::attention_detail
