// AVX-512 (F/BW + VBMI) table decode of packed n-bit indices, 64 indices per step:
//   1. a masked load of the 8*nbits bytes that hold them;
//   2. VPERMB gives each qword the nbits bytes of its 8 indices, VPMULTISHIFTQB moves index j of
//      the qword to byte j, an AND keeps nbits bits: 64 byte indices in order;
//   3. one more VPERMB orders them for step 5;
//   4. the table lookup: the table is split into byte planes (byte k of every entry, 64 bytes per
//      plane for nbits <= 6; 128 or 256 for 7 and 8 bits), and VPERMB / VPERMI2B fetch plane k for
//      all 64 indices at once;
//   5. VPUNPCK{L,H}BW (and WD for fp32) interleave the planes into 16- or 32-bit values, which are
//      stored in order thanks to step 3.
// Only called when fast_decode_available() (palettized_decode.cpp).
// GCC 12's VBMI intrinsics start from _mm512_undefined_epi32(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/cpu/palettized_decode.h"

namespace sdpal::cpu::palettized::detail {

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi")))

namespace {

// Byte indices (< 2^nbits) of 64 consecutive entries starting at byte `src`; `valid` indices
// (1..64) are read, the bytes beyond them are not touched.
TGT inline __m512i unpack64(const uint8_t* src, int nbits, int valid, __m512i perm, __m512i shifts, __m512i mask) {
  const int bytes = (valid * nbits + 7) / 8;
  const __mmask64 lm = bytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << bytes) - 1;
  const __m512i raw = _mm512_maskz_loadu_epi8(lm, src);
  const __m512i q = _mm512_permutexvar_epi8(perm, raw);
  return _mm512_and_si512(_mm512_multishift_epi64_epi8(shifts, q), mask);
}

// Plane lookup of 64 byte indices.
TGT inline __m512i lookup(__m512i idx, const uint8_t* plane, int nbits) {
  if (nbits <= 6) return _mm512_permutexvar_epi8(idx, _mm512_load_si512(plane));
  const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(plane), idx, _mm512_load_si512(plane + 64));
  if (nbits == 7) return lo;
  const __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(plane + 128), idx, _mm512_load_si512(plane + 192));
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

TGT inline __mmask16 mask16(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}
TGT inline __mmask32 mask32(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1);
}

}  // namespace

TGT void decode_avx512_vbmi(const uint8_t* packed, int nbits, int64_t first, int64_t count, const DecodeTable& table,
                            OutType type, void* out) {
  const bool f32 = type == OutType::kF32;
  const uint8_t(*planes)[256] = f32 ? table.f32_planes : table.bf16_planes;

  alignas(64) uint8_t perm_b[64], shift_b[64], order_b[64];
  for (int j = 0; j < 64; ++j) {
    const int q = j / 8, b = j % 8;
    perm_b[j] = uint8_t(q * nbits + (b < nbits ? b : nbits - 1));
    shift_b[j] = uint8_t(b * nbits);
    const int l = j / 16, r = j % 16;  // 128-bit lane, byte in lane
    // fp32: position l*16 + k*4 + i holds element k*16 + l*4 + i; bf16: l*16 + h*8 + i <- h*32 + l*8 + i.
    order_b[j] = f32 ? uint8_t((r / 4) * 16 + l * 4 + r % 4) : uint8_t((r / 8) * 32 + l * 8 + r % 8);
  }
  const __m512i perm = _mm512_load_si512(perm_b), shifts = _mm512_load_si512(shift_b);
  const __m512i order = _mm512_load_si512(order_b);
  const __m512i mask = _mm512_set1_epi8(char((1u << nbits) - 1u));
  const uint8_t* src = packed + (first / 8) * nbits;

  for (int64_t i = 0; i < count; i += 64, src += 8 * nbits) {
    const int64_t rem = count - i;
    const int valid = rem >= 64 ? 64 : int(rem);
    const __m512i idx = _mm512_permutexvar_epi8(order, unpack64(src, nbits, valid, perm, shifts, mask));
    if (f32) {
      const __m512i b0 = lookup(idx, planes[0], nbits), b1 = lookup(idx, planes[1], nbits);
      const __m512i b2 = lookup(idx, planes[2], nbits), b3 = lookup(idx, planes[3], nbits);
      const __m512i t0 = _mm512_unpacklo_epi8(b0, b1), t1 = _mm512_unpackhi_epi8(b0, b1);
      const __m512i t2 = _mm512_unpacklo_epi8(b2, b3), t3 = _mm512_unpackhi_epi8(b2, b3);
      float* o = static_cast<float*>(out) + i;
      const __m512i r0 = _mm512_unpacklo_epi16(t0, t2), r1 = _mm512_unpackhi_epi16(t0, t2);
      const __m512i r2 = _mm512_unpacklo_epi16(t1, t3), r3 = _mm512_unpackhi_epi16(t1, t3);
      if (valid == 64) {
        _mm512_storeu_si512(o, r0);
        _mm512_storeu_si512(o + 16, r1);
        _mm512_storeu_si512(o + 32, r2);
        _mm512_storeu_si512(o + 48, r3);
      } else {
        _mm512_mask_storeu_epi32(o, mask16(valid), r0);
        _mm512_mask_storeu_epi32(o + 16, mask16(valid - 16), r1);
        _mm512_mask_storeu_epi32(o + 32, mask16(valid - 32), r2);
        _mm512_mask_storeu_epi32(o + 48, mask16(valid - 48), r3);
      }
    } else {
      const __m512i b0 = lookup(idx, planes[0], nbits), b1 = lookup(idx, planes[1], nbits);
      const __m512i r0 = _mm512_unpacklo_epi8(b0, b1), r1 = _mm512_unpackhi_epi8(b0, b1);
      uint16_t* o = static_cast<uint16_t*>(out) + i;
      if (valid == 64) {
        _mm512_storeu_si512(o, r0);
        _mm512_storeu_si512(o + 32, r1);
      } else {
        _mm512_mask_storeu_epi16(o, mask32(valid), r0);
        _mm512_mask_storeu_epi16(o + 32, mask32(valid - 32), r1);
      }
    }
  }
}

}  // namespace sdpal::cpu::palettized::detail
