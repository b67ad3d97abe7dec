// AVX-512 flash attention. Per (batch, head, block of kBq queries): S = (scale Q) K^T for a block
// of kBk keys from K pre-packed as 16-key panels ([D][16], so S is built with broadcast-FMAs over
// contiguous key vectors), an online-softmax update, then O += P V reading V rows in place.
// Compiled for AVX-512 via target attributes; only called when cpu_features() has avx512_core.
// GCC 12 reports -Wmaybe-uninitialized inside immintrin.h for intrinsics that use
// _mm512_undefined_*() as a don't-care operand (reduce_max/add, roundscale, scalef): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "kernels/cpu/attention_avx512_common.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/vec_math.h"

namespace sdpal::cpu::attention_detail {
namespace {

constexpr int64_t kBq = 48;   // query rows per work item: 8 QK row groups of 6, 6 PV groups of 8
constexpr int64_t kBk = 128;  // keys per block (8 panels of 16)
constexpr int kQkRows = 6;    // QK micro-kernel: 6 rows x 4 panels = 24 accumulators
constexpr int kQkPanels = 4;

#define TGT SDPAL_TARGET_AVX512

// s[R][NP*16] (row stride kBk) = q[R][d] . kp panels; panel p of 16 keys is kp + p*d*16, [d][16].
template <int R, int NP>
TGT void qk_kernel(const float* q, int64_t d, const float* kp, float* s) {
  __m512 acc[R][NP];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t e = 0; e < d; ++e) {
    __m512 kv[NP];
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) kv[p] = _mm512_load_ps(kp + (p * d + e) * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 qv = _mm512_set1_ps(q[r * d + e]);
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_fmadd_ps(qv, kv[p], acc[r][p]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) _mm512_store_ps(s + r * kBk + p * 16, acc[r][p]);
}

template <int NP, int R = 1>
TGT void qk_rows(int rows, const float* q, int64_t d, const float* kp, float* s) {
  if constexpr (R <= kQkRows) {
    if (rows == R) return qk_kernel<R, NP>(q, d, kp, s);
    qk_rows<NP, R + 1>(rows, q, d, kp, s);
  }
}

TGT void qk(int rows, int np, const float* q, int64_t d, const float* kp, float* s) {
  switch (np) {
    case 1: return qk_rows<1>(rows, q, d, kp, s);
    case 2: return qk_rows<2>(rows, q, d, kp, s);
    case 3: return qk_rows<3>(rows, q, d, kp, s);
    default: return qk_rows<4>(rows, q, d, kp, s);
  }
}

// o[R][NV*16] (row stride o_stride) += p[R][nk] (row stride kBk) . v[nk][NV*16] (row stride
// v_stride; the last vector loads only the lanes in `last`).
template <int R, int NV>
TGT void pv_kernel(const float* p, const float* v, int64_t v_stride, int64_t nk, float* o, int64_t o_stride,
                   __mmask16 last) {
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 5
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_load_ps(o + r * o_stride + c * 16);
  for (int64_t j = 0; j < nk; ++j) {
    const float* vr = v + j * v_stride;
    __m512 vv[NV];
#pragma GCC unroll 5
    for (int c = 0; c < NV - 1; ++c) vv[c] = _mm512_loadu_ps(vr + c * 16);
    vv[NV - 1] = _mm512_maskz_loadu_ps(last, vr + (NV - 1) * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 pb = _mm512_set1_ps(p[r * kBk + j]);
#pragma GCC unroll 5
      for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
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
TGT void pv_rows(int rows, const float* p, const float* v, int64_t v_stride, int64_t nk, float* o,
                 int64_t o_stride, __mmask16 last) {
  if constexpr (R <= pv_rows_max(NV)) {
    if (rows == R) return pv_kernel<R, NV>(p, v, v_stride, nk, o, o_stride, last);
    pv_rows<NV, R + 1>(rows, p, v, v_stride, nk, o, o_stride, last);
  }
}

// O[r rows] += P V over all head-dim chunks (<= 5 vectors each).
TGT void pv(int64_t r, int64_t d, const float* p, const float* v, int64_t v_stride, int64_t nk, float* o,
            int64_t o_stride) {
  const int64_t nvec = (d + 15) / 16;
  for (int64_t c0 = 0; c0 < nvec;) {
    int nv = nvec <= 5 ? int(nvec) : int(std::min<int64_t>(4, nvec - c0));
    __mmask16 last = tail_mask(d - (c0 + nv - 1) * 16);
    int rmax = pv_rows_max(nv);
    for (int64_t i = 0; i < r; i += rmax) {
      int rows = int(std::min<int64_t>(rmax, r - i));
      const float* pi = p + i * kBk;
      const float* vc = v + c0 * 16;
      float* oi = o + i * o_stride + c0 * 16;
      switch (nv) {
        case 1: pv_rows<1>(rows, pi, vc, v_stride, nk, oi, o_stride, last); break;
        case 2: pv_rows<2>(rows, pi, vc, v_stride, nk, oi, o_stride, last); break;
        case 3: pv_rows<3>(rows, pi, vc, v_stride, nk, oi, o_stride, last); break;
        case 4: pv_rows<4>(rows, pi, vc, v_stride, nk, oi, o_stride, last); break;
        default: pv_rows<5>(rows, pi, vc, v_stride, nk, oi, o_stride, last); break;
      }
    }
    c0 += nv;
  }
}

struct Job {
  AttentionShape s;
  const float *q, *k, *v;
  float* out;
  const float* kpack;  // [B*H][npanels][D][16]
  const float* vpack;  // [B*H][kv_len][dp], zero-padded: aligned, unmasked loads in the PV kernel
  int64_t npanels, dp;  // dp: head_dim rounded up to 16 (O and packed V row stride)
};

TGT void run_block(const Job& job, int64_t b, int64_t h, int64_t i0, float* scratch) {
  const AttentionShape& s = job.s;
  const int64_t d = s.head_dim, dp = job.dp;
  const int64_t r = std::min(kBq, s.q_len - i0);
  float* qs = scratch;                       // [kBq][d], scaled queries
  float* sb = qs + (kBq * d + 15) / 16 * 16;  // [kBq][kBk], scores then probabilities
  float* ob = sb + kBq * kBk;                // [kBq][dp], unnormalized output
  float* m = ob + kBq * dp;
  float* l = m + kBq;

  const __m512 vscale = _mm512_set1_ps(s.scale);
  for (int64_t i = 0; i < r; ++i) {
    const float* src = job.q + b * s.q_batch_stride + (i0 + i) * s.q_stride + h * d;
    for (int64_t e = 0; e < d; e += 16) {
      __mmask16 mk = tail_mask(d - e);
      _mm512_mask_storeu_ps(qs + i * d + e, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, src + e), vscale));
    }
    for (int64_t e = 0; e < dp; e += 16) _mm512_store_ps(ob + i * dp + e, _mm512_setzero_ps());
    m[i] = -std::numeric_limits<float>::infinity();
    l[i] = 0.f;
  }

  const int64_t kv_end = s.causal ? std::min(s.kv_len, i0 + r) : s.kv_len;
  const float* kp = job.kpack + (b * s.heads + h) * job.npanels * d * 16;
  const float* vb = job.vpack + (b * s.heads + h) * s.kv_len * dp;
  for (int64_t k0 = 0; k0 < kv_end; k0 += kBk) {
    const int64_t nk = std::min(kBk, kv_end - k0);
    const int64_t np = (nk + 15) / 16;
    for (int64_t i = 0; i < r; i += kQkRows) {
      int rows = int(std::min<int64_t>(kQkRows, r - i));
      for (int64_t p = 0; p < np; p += kQkPanels)
        qk(rows, int(std::min<int64_t>(kQkPanels, np - p)), qs + i * d, d, kp + (k0 / 16 + p) * d * 16,
           sb + i * kBk + p * 16);
    }
    for (int64_t i = 0; i < r; ++i) {
      float* srow = sb + i * kBk;
      const int64_t valid = s.causal ? std::min(nk, i0 + i + 1 - k0) : nk;
      if (valid <= 0) {  // causal: this row sees none of these keys
        for (int64_t c = 0; c < np * 16; c += 16) _mm512_store_ps(srow + c, _mm512_setzero_ps());
        continue;
      }
      float corr = softmax_row(srow, valid, np * 16, m[i], l[i]);
      if (corr != 1.f) {
        const __m512 vc = _mm512_set1_ps(corr);
        for (int64_t e = 0; e < dp; e += 16)
          _mm512_store_ps(ob + i * dp + e, _mm512_mul_ps(_mm512_load_ps(ob + i * dp + e), vc));
      }
    }
    pv(r, dp, sb, vb + k0 * dp, dp, nk, ob, dp);
  }

  for (int64_t i = 0; i < r; ++i) {
    float* dst = job.out + b * s.o_batch_stride + (i0 + i) * s.o_stride + h * d;
    const __m512 inv = _mm512_set1_ps(1.f / l[i]);
    for (int64_t e = 0; e < d; e += 16)
      _mm512_mask_storeu_ps(dst + e, tail_mask(d - e), _mm512_mul_ps(_mm512_load_ps(ob + i * dp + e), inv));
  }
}

// Rows [lo, hi) of (batch * head, key) from v into vpack, padded with zeros to dp floats.
TGT void pack_v_rows(const AttentionShape& s, const float* v, float* vpack, int64_t dp, int64_t lo, int64_t hi) {
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t bh = idx / s.kv_len, j = idx % s.kv_len;
    const float* src = v + bh / s.heads * s.v_batch_stride + j * s.v_stride + bh % s.heads * s.head_dim;
    for (int64_t e = 0; e < dp; e += 16)
      _mm512_store_ps(vpack + idx * dp + e, _mm512_maskz_loadu_ps(tail_mask(s.head_dim - e), src + e));
  }
}

}  // namespace

void attention_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, float* out) {
  if (s.batch == 0 || s.q_len == 0) return;
  Job job;
  job.s = s;
  job.q = q;
  job.k = k;
  job.v = v;
  job.out = out;
  job.npanels = (s.kv_len + 15) / 16;
  job.dp = (s.head_dim + 15) / 16 * 16;
  thread_local ScratchBuffer kpack_buf;
  float* kpack = kpack_buf.get(size_t(s.batch * s.heads * job.npanels * s.head_dim * 16));
  pack_k_panels(s, k, kpack);
  job.kpack = kpack;
  // V rows of a head are rarely 64-byte aligned (head h starts at h * head_dim floats), and split
  // loads slowed the PV kernel by ~1.5x: copy them into aligned, zero-padded rows first.
  thread_local ScratchBuffer vpack_buf;
  float* vpack = vpack_buf.get(size_t(s.batch * s.heads * s.kv_len * job.dp));
  parallel_for(s.batch * s.heads * s.kv_len, [&](int64_t lo, int64_t hi) { pack_v_rows(s, v, vpack, job.dp, lo, hi); },
               256);
  job.vpack = vpack;

  const int64_t qblocks = (s.q_len + kBq - 1) / kBq;
  const size_t scratch_floats = size_t((kBq * s.head_dim + 15) / 16 * 16 + kBq * kBk + kBq * job.dp + 2 * kBq);
  parallel_for(s.batch * s.heads * qblocks, [&](int64_t lo, int64_t hi) {
    thread_local ScratchBuffer scratch;
    float* buf = scratch.get(scratch_floats);
    for (int64_t idx = lo; idx < hi; ++idx) {
      const int64_t bh = idx / qblocks, qb = idx % qblocks;
      run_block(job, bh / s.heads, bh % s.heads, qb * kBq, buf);
    }
  });
}

}  // namespace sdpal::cpu::attention_detail
