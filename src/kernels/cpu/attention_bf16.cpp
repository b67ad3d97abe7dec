// bf16 flash attention (AttentionShape::precision == BF16) with AVX512-BF16 dot products: the same
// blocking as the fp32 AVX-512 kernel (attention_avx512.cpp), but both products run on VDPBF16PS,
// which multiplies pairs of bf16 values and accumulates in fp32 (twice the FMAs per instruction).
//   S = (scale Q) K^T: Q rows as bf16 pairs along head_dim (one broadcast 32-bit pair per row),
//     K pre-packed as 16-key panels [D/2][16 keys][2] (one vector per head_dim pair).
//   online softmax in fp32 (shared with the fp32 kernel), P rounded to bf16 pairs along keys.
//   O += P V: V pre-packed as key pairs [kv/2][Dp][2] (one vector = 16 columns x 2 keys).
// Rounding: q*scale, k, v and p are rounded to bf16 (nearest even); everything else is fp32.
// Only called when cpu_features() has avx512_core and avx512_bf16. cpu::attention prefers the AMX
// kernel (attention_amx.cpp) and uses this one only on CPUs without AMX (Cooper Lake, Zen 4): on
// Sapphire Rapids VDPBF16PS runs at half the rate of VFMADD231PS (bench_peak), so this kernel is
// slower than the fp32 one there.
// GCC 12 reports -Wmaybe-uninitialized inside immintrin.h for intrinsics that use
// _mm512_undefined_*() as a don't-care operand: a false positive (see attention_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/threads.h"
#include "kernels/cpu/attention_avx512_common.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/scratch.h"

namespace sdpal::cpu::attention_detail {
namespace {

constexpr int64_t kBq = 48;   // query rows per work item
constexpr int64_t kBk = 128;  // keys per block (8 panels of 16, 64 key pairs)
constexpr int64_t kBkPairs = kBk / 2;
constexpr int kQkRows = 6;  // QK micro-kernel: 6 rows x 4 panels = 24 accumulators
constexpr int kQkPanels = 4;

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512bf16")))

TGT inline __mmask32 tail_mask32(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1);
}

TGT inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// 32 bf16 values: [lo[0..15], hi[0..15]] rounded to nearest even.
TGT inline __m512i to_bf16(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

// s[R][NP*16] (row stride kBk) = q[R] . panels; q rows are dq bf16 pairs (row stride dq), panel p
// of 16 keys is kp + p * dq * 32 bf16, laid out [dq][16][2].
template <int R, int NP>
TGT void qk_kernel(const uint32_t* q, int64_t dq, const uint16_t* kp, float* s) {
  __m512 acc[R][NP];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t e = 0; e < dq; ++e) {
    __m512bh kv[NP];
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) kv[p] = as_bh(_mm512_load_si512(kp + (p * dq + e) * 32));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512bh qv = as_bh(_mm512_set1_epi32(int(q[r * dq + e])));
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], qv, kv[p]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) _mm512_store_ps(s + r * kBk + p * 16, acc[r][p]);
}

template <int NP, int R = 1>
TGT void qk_rows(int rows, const uint32_t* q, int64_t dq, const uint16_t* kp, float* s) {
  if constexpr (R <= kQkRows) {
    if (rows == R) return qk_kernel<R, NP>(q, dq, kp, s);
    qk_rows<NP, R + 1>(rows, q, dq, kp, s);
  }
}

TGT void qk(int rows, int np, const uint32_t* q, int64_t dq, const uint16_t* kp, float* s) {
  switch (np) {
    case 1: return qk_rows<1>(rows, q, dq, kp, s);
    case 2: return qk_rows<2>(rows, q, dq, kp, s);
    case 3: return qk_rows<3>(rows, q, dq, kp, s);
    default: return qk_rows<4>(rows, q, dq, kp, s);
  }
}

// o[R][NV*16] (row stride o_stride) += p[R][npairs] (bf16 key pairs, row stride kBkPairs) .
// v[npairs][NV*16][2] (key-pair row stride v_stride bf16 values).
template <int R, int NV>
TGT void pv_kernel(const uint32_t* p, const uint16_t* v, int64_t v_stride, int64_t npairs, float* o,
                   int64_t o_stride) {
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 5
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_load_ps(o + r * o_stride + c * 16);
  for (int64_t j = 0; j < npairs; ++j) {
    const uint16_t* vr = v + j * v_stride;
    __m512bh vv[NV];
#pragma GCC unroll 5
    for (int c = 0; c < NV; ++c) vv[c] = as_bh(_mm512_load_si512(vr + c * 32));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512bh pb = as_bh(_mm512_set1_epi32(int(p[r * kBkPairs + j])));
#pragma GCC unroll 5
      for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], pb, vv[c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 5
    for (int c = 0; c < NV; ++c) _mm512_store_ps(o + r * o_stride + c * 16, acc[r][c]);
}

// Rows per PV call for NV vectors: keeps R * NV <= 24 accumulators.
constexpr int pv_rows_max(int nv) { return nv <= 3 ? 8 : nv == 4 ? 6 : 4; }

template <int NV, int R = 1>
TGT void pv_rows(int rows, const uint32_t* p, const uint16_t* v, int64_t v_stride, int64_t npairs, float* o,
                 int64_t o_stride) {
  if constexpr (R <= pv_rows_max(NV)) {
    if (rows == R) return pv_kernel<R, NV>(p, v, v_stride, npairs, o, o_stride);
    pv_rows<NV, R + 1>(rows, p, v, v_stride, npairs, o, o_stride);
  }
}

// O[r rows][dp] += P V over all head-dim chunks (<= 5 vectors each); dp is a multiple of 16.
TGT void pv(int64_t r, int64_t dp, const uint32_t* p, const uint16_t* v, int64_t npairs, float* o) {
  const int64_t nvec = dp / 16;
  for (int64_t c0 = 0; c0 < nvec;) {
    const int nv = nvec <= 5 ? int(nvec) : int(std::min<int64_t>(4, nvec - c0));
    const int rmax = pv_rows_max(nv);
    for (int64_t i = 0; i < r; i += rmax) {
      const int rows = int(std::min<int64_t>(rmax, r - i));
      const uint32_t* pi = p + i * kBkPairs;
      const uint16_t* vc = v + c0 * 32;
      float* oi = o + i * dp + c0 * 16;
      switch (nv) {
        case 1: pv_rows<1>(rows, pi, vc, 2 * dp, npairs, oi, dp); break;
        case 2: pv_rows<2>(rows, pi, vc, 2 * dp, npairs, oi, dp); break;
        case 3: pv_rows<3>(rows, pi, vc, 2 * dp, npairs, oi, dp); break;
        case 4: pv_rows<4>(rows, pi, vc, 2 * dp, npairs, oi, dp); break;
        default: pv_rows<5>(rows, pi, vc, 2 * dp, npairs, oi, dp); break;
      }
    }
    c0 += nv;
  }
}

struct Job {
  AttentionShape s;
  const float* q;
  float* out;
  const uint16_t* kpack;  // [B*H][npanels][dq][16][2]
  const uint16_t* vpack;  // [B*H][kv_pairs][dp][2]
  int64_t npanels, kv_pairs;
  int64_t dq, dp;  // head_dim in bf16 pairs; head_dim rounded up to 16
};

// One row of `d` floats (times scale) as dq bf16 pairs, zero-padded.
TGT void row_to_pairs(const float* src, int64_t d, float scale, uint32_t* dst, int64_t dq) {
  const __m512 vs = _mm512_set1_ps(scale);
  uint16_t* out = reinterpret_cast<uint16_t*>(dst);
  for (int64_t e = 0; e < 2 * dq; e += 32) {
    const __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(d - e), src + e), vs);
    const __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(d - e - 16), src + e + 16), vs);
    _mm512_mask_storeu_epi16(out + e, tail_mask32(2 * dq - e), to_bf16(lo, hi));
  }
}

TGT void run_block(const Job& job, int64_t b, int64_t h, int64_t i0, float* scratch) {
  const AttentionShape& s = job.s;
  const int64_t d = s.head_dim, dq = job.dq, dp = job.dp;
  const int64_t r = std::min(kBq, s.q_len - i0);
  uint32_t* qs = reinterpret_cast<uint32_t*>(scratch);  // [kBq][dq] scaled queries, bf16 pairs
  float* sb = scratch + (kBq * dq + 15) / 16 * 16;       // [kBq][kBk] scores, then probabilities
  uint32_t* pb = reinterpret_cast<uint32_t*>(sb + kBq * kBk);  // [kBq][kBkPairs] probabilities, bf16
  float* ob = sb + kBq * kBk + kBq * kBkPairs;                 // [kBq][dp] unnormalized output
  float* m = ob + kBq * dp;
  float* l = m + kBq;

  for (int64_t i = 0; i < r; ++i) {
    row_to_pairs(job.q + b * s.q_batch_stride + (i0 + i) * s.q_stride + h * d, d, s.scale, qs + i * dq, dq);
    for (int64_t e = 0; e < dp; e += 16) _mm512_store_ps(ob + i * dp + e, _mm512_setzero_ps());
    m[i] = -std::numeric_limits<float>::infinity();
    l[i] = 0.f;
  }

  const int64_t kv_end = s.causal ? std::min(s.kv_len, i0 + r) : s.kv_len;
  const uint16_t* kp = job.kpack + (b * s.heads + h) * job.npanels * dq * 32;
  const uint16_t* vb = job.vpack + (b * s.heads + h) * job.kv_pairs * dp * 2;
  for (int64_t k0 = 0; k0 < kv_end; k0 += kBk) {
    const int64_t nk = std::min(kBk, kv_end - k0);
    const int64_t np = (nk + 15) / 16;
    for (int64_t i = 0; i < r; i += kQkRows) {
      const int rows = int(std::min<int64_t>(kQkRows, r - i));
      for (int64_t p = 0; p < np; p += kQkPanels)
        qk(rows, int(std::min<int64_t>(kQkPanels, np - p)), qs + i * dq, dq, kp + (k0 / 16 + p) * dq * 32,
           sb + i * kBk + p * 16);
    }
    for (int64_t i = 0; i < r; ++i) {
      float* srow = sb + i * kBk;
      const int64_t valid = s.causal ? std::min(nk, i0 + i + 1 - k0) : nk;
      if (valid <= 0) {  // causal: this row sees none of these keys
        for (int64_t c = 0; c < np * 16; c += 16) _mm512_store_ps(srow + c, _mm512_setzero_ps());
      } else {
        const float corr = softmax_row(srow, valid, np * 16, m[i], l[i]);
        if (corr != 1.f) {
          const __m512 vc = _mm512_set1_ps(corr);
          for (int64_t e = 0; e < dp; e += 16)
            _mm512_store_ps(ob + i * dp + e, _mm512_mul_ps(_mm512_load_ps(ob + i * dp + e), vc));
        }
      }
      // Probabilities as bf16 key pairs. Scores past np*16 are stale, but only pairs of keys below
      // nk + 1 <= np*16 are read by the PV kernel.
      for (int64_t c = 0; c < np * 16; c += 32)
        _mm512_store_si512(pb + i * kBkPairs + c / 2, to_bf16(_mm512_load_ps(srow + c), _mm512_load_ps(srow + c + 16)));
    }
    pv(r, dp, pb, vb + (k0 / 2) * dp * 2, (nk + 1) / 2, ob);
  }

  for (int64_t i = 0; i < r; ++i) {
    float* dst = job.out + b * s.o_batch_stride + (i0 + i) * s.o_stride + h * d;
    const __m512 inv = _mm512_set1_ps(1.f / l[i]);
    for (int64_t e = 0; e < d; e += 16)
      _mm512_mask_storeu_ps(dst + e, tail_mask(d - e), _mm512_mul_ps(_mm512_load_ps(ob + i * dp + e), inv));
  }
}

// K panels [lo, hi) of all (batch, head): panel idx = (b * heads + h) * npanels + p.
TGT void pack_k(const AttentionShape& s, const float* k, uint16_t* kpack, int64_t npanels, int64_t dq, int64_t lo,
                int64_t hi) {
  alignas(64) uint32_t row[512];  // one key as bf16 pairs (dq <= 512 here; larger d uses the loop below)
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t bh = idx / npanels, p = idx % npanels;
    const int64_t b = bh / s.heads, h = bh % s.heads;
    uint32_t* dst = reinterpret_cast<uint32_t*>(kpack + idx * dq * 32);
    for (int64_t j = 0; j < 16; ++j) {
      const int64_t key = p * 16 + j;
      for (int64_t e0 = 0; e0 < dq; e0 += 512) {
        const int64_t n = std::min<int64_t>(512, dq - e0);
        if (key < s.kv_len) {
          const float* src = k + b * s.k_batch_stride + key * s.k_stride + h * s.head_dim + 2 * e0;
          row_to_pairs(src, s.head_dim - 2 * e0, 1.f, row, n);
        } else {
          std::fill(row, row + n, 0u);
        }
        for (int64_t e = 0; e < n; ++e) dst[(e0 + e) * 16 + j] = row[e];
      }
    }
  }
}

// V key pairs [lo, hi) of all (batch, head): idx = (b * heads + h) * kv_pairs + pair.
TGT void pack_v(const AttentionShape& s, const float* v, uint16_t* vpack, int64_t kv_pairs, int64_t dp, int64_t lo,
                int64_t hi) {
  // Interleaves two rows of 16 bf16 values (a in the low half, b in the high half) as a0 b0 a1 b1 ...
  alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                           21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                           11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i perm = _mm512_load_si512(kInterleave);
  const int64_t d = s.head_dim;
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t bh = idx / kv_pairs, j2 = idx % kv_pairs;
    const float* base = v + bh / s.heads * s.v_batch_stride + bh % s.heads * d;
    const int64_t j0 = 2 * j2, j1 = 2 * j2 + 1;
    const float* r0 = base + j0 * s.v_stride;
    const float* r1 = j1 < s.kv_len ? base + j1 * s.v_stride : nullptr;
    uint16_t* dst = vpack + idx * dp * 2;
    for (int64_t c = 0; c < dp; c += 16) {
      const __mmask16 mk = tail_mask(d - c);
      const __m512 a = _mm512_maskz_loadu_ps(mk, r0 + c);
      const __m512 bv = r1 ? _mm512_maskz_loadu_ps(mk, r1 + c) : _mm512_setzero_ps();
      _mm512_store_si512(dst + 2 * c, _mm512_permutexvar_epi16(perm, to_bf16(a, bv)));
    }
  }
}

}  // namespace

void attention_avx512_bf16(const AttentionShape& s, const float* q, const float* k, const float* v, float* out) {
  if (s.batch == 0 || s.q_len == 0) return;
  Job job;
  job.s = s;
  job.q = q;
  job.out = out;
  job.npanels = (s.kv_len + 15) / 16;
  job.kv_pairs = (s.kv_len + 1) / 2;
  job.dq = (s.head_dim + 1) / 2;
  job.dp = (s.head_dim + 15) / 16 * 16;
  const int64_t bh = s.batch * s.heads;

  thread_local ScratchBuffer kpack_buf, vpack_buf;
  // Sizes in floats: two bf16 values per float.
  uint16_t* kpack = reinterpret_cast<uint16_t*>(kpack_buf.get(size_t(bh * job.npanels * job.dq * 16)));
  uint16_t* vpack = reinterpret_cast<uint16_t*>(vpack_buf.get(size_t(bh * job.kv_pairs * job.dp)));
  parallel_for(bh * job.npanels, [&](int64_t lo, int64_t hi) { pack_k(s, k, kpack, job.npanels, job.dq, lo, hi); }, 4);
  parallel_for(bh * job.kv_pairs, [&](int64_t lo, int64_t hi) { pack_v(s, v, vpack, job.kv_pairs, job.dp, lo, hi); },
               128);
  job.kpack = kpack;
  job.vpack = vpack;

  const int64_t qblocks = (s.q_len + kBq - 1) / kBq;
  const size_t scratch_floats =
      size_t((kBq * job.dq + 15) / 16 * 16 + kBq * kBk + kBq * kBkPairs + kBq * job.dp + 2 * kBq);
  parallel_for(bh * qblocks, [&](int64_t lo, int64_t hi) {
    thread_local ScratchBuffer scratch;
    float* buf = scratch.get(scratch_floats);
    for (int64_t idx = lo; idx < hi; ++idx) {
      const int64_t item = idx / qblocks, qb = idx % qblocks;
      run_block(job, item / s.heads, item % s.heads, qb * kBq, buf);
    }
  });
}

#undef TGT

}  // namespace sdpal::cpu::attention_detail
