#include "kernels/cpu/bf16_convert.h"

#include <immintrin.h>

#include <algorithm>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/threads.h"

namespace sdpal::cpu {
namespace {

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void convert_avx512bf16(const float* src,
                                                                                         uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, __m512i(v));
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
    _mm256_mask_storeu_epi16(dst + i, m, __m256i(v));
  }
}

void convert_scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

}  // namespace

void f32_to_bf16_serial(const float* src, uint16_t* dst, int64_t n) {
  if (n <= 0) return;
  if (cpu_features().avx512_core() && cpu_features().avx512_bf16)
    convert_avx512bf16(src, dst, n);
  else
    convert_scalar(src, dst, n);
}

void f32_to_bf16_parallel(const float* src, uint16_t* dst, int64_t n) {
  // Chunks of 64 KiB of input (64-byte aligned boundaries in the output); inputs of up to 8 chunks
  // (512 KiB, ~20 us on one core) stay on the calling thread: a parallel region costs a barrier,
  // which is expensive when the cores are shared.
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t lo, int64_t hi) {
    const int64_t b = lo * kChunk, e = std::min(n, hi * kChunk);
    f32_to_bf16_serial(src + b, dst + b, e - b);
  }, 8);
}

}  // namespace sdpal::cpu
