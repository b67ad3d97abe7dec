// Portable flash attention: the same blocked online softmax as the AVX-512 kernel (blocks of
// kRows queries share every K/V load), written with GCC/Clang generic vectors so it compiles to
// whatever SIMD the target has. Built twice: for the baseline ISA and for AVX2+FMA (run-time pick).
// The 32-byte vector helpers are internal and always inlined, so GCC's note that returning them
// without AVX "changes the ABI" does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/vec_math.h"

#define SDPAL_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace sdpal::cpu::attention_detail {
namespace {

constexpr int64_t kBk = 128;  // keys per online-softmax step (8 panels)
constexpr int kRows = 4;      // queries per block

typedef float V8 __attribute__((vector_size(32)));

SDPAL_INLINE V8 load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
SDPAL_INLINE void store8(float* p, const V8& v) { std::memcpy(p, &v, sizeof(v)); }
// Broadcasts. GCC 12 lowers `scalar * vector` through the stack on SSE2 (a store-forwarding
// stall per use) but wants `vector + scalar` on AVX2 (an element list there gets SLP-mangled into
// insert chains), so the flavour is a template parameter of the kernel.
template <bool kSse>
SDPAL_INLINE V8 splat(float x) {
  if constexpr (kSse)
    return V8{x, x, x, x, x, x, x, x};
  else
    return V8{} + x;
}

struct Block {
  const AttentionShape* s;
  const float* kp;  // this head's K panels
  const float* v;   // this head's first V row
  int64_t i0, rows;
};

// Queries i0 .. i0+rows-1 of one head. q rows are read with s.q_stride, out rows written likewise.
template <bool kSse>
SDPAL_INLINE void run_block(const Block& blk, const float* q, float* out, float* buf) {
  const AttentionShape& s = *blk.s;
  const int64_t d = s.head_dim, rows = blk.rows, i0 = blk.i0;
  float* qs = buf;             // [kRows][d] scaled queries (unused rows zero)
  float* o = qs + kRows * d;   // [kRows][d] unnormalized outputs
  float* p = o + kRows * d;    // [kRows][kBk] scores then probabilities
  float m[kRows], l[kRows], corr[kRows];
  for (int r = 0; r < kRows; ++r) {
    for (int64_t e = 0; e < d; ++e) {
      qs[r * d + e] = r < rows ? q[r * s.q_stride + e] * s.scale : 0.f;
      o[r * d + e] = 0.f;
    }
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.f;
  }
  const int64_t kv_end = s.causal ? std::min(s.kv_len, i0 + rows) : s.kv_len;
  for (int64_t k0 = 0; k0 < kv_end; k0 += kBk) {
    const int64_t nk = std::min(kBk, kv_end - k0);
    // Scores for 16 keys at a time from the [d][16] panels (zero past kv_len).
    for (int64_t j0 = 0; j0 < nk; j0 += 16) {
      const float* panel = blk.kp + (k0 + j0) / 16 * d * 16;
      V8 acc[kRows][2] = {};
      for (int64_t e = 0; e < d; ++e) {
        const V8 ka = load8(panel + e * 16), kb = load8(panel + e * 16 + 8);
        for (int r = 0; r < kRows; ++r) {
          const V8 qv = splat<kSse>(qs[r * d + e]);
          acc[r][0] += qv * ka;
          acc[r][1] += qv * kb;
        }
      }
      for (int r = 0; r < kRows; ++r) {
        store8(p + r * kBk + j0, acc[r][0]);
        store8(p + r * kBk + j0 + 8, acc[r][1]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      float* pr = p + r * kBk;
      const int64_t valid = r >= rows ? 0 : s.causal ? std::min(nk, i0 + r + 1 - k0) : nk;
      corr[r] = 1.f;
      if (valid <= 0) {
        std::fill(pr, pr + nk, 0.f);
        continue;
      }
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, pr[j]);
      const float m_new = std::max(m[r], mx);
      corr[r] = m[r] == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(m[r] - m_new);
      float sum = 0.f;
      for (int64_t j = 0; j < valid; ++j) {
        pr[j] = vm::exp_f32(pr[j] - m_new);
        sum += pr[j];
      }
      std::fill(pr + valid, pr + nk, 0.f);
      l[r] = l[r] * corr[r] + sum;
      m[r] = m_new;
    }
    // o = o * corr + P V: 16 output columns x kRows rows in registers, then 8, then scalar.
    const float* vb = blk.v + k0 * s.v_stride;
    int64_t e0 = 0;
    for (; e0 + 16 <= d; e0 += 16) {
      V8 acc[kRows][2];
      for (int r = 0; r < kRows; ++r) {
        acc[r][0] = load8(o + r * d + e0) * splat<kSse>(corr[r]);
        acc[r][1] = load8(o + r * d + e0 + 8) * splat<kSse>(corr[r]);
      }
      for (int64_t j = 0; j < nk; ++j) {
        const V8 va = load8(vb + j * s.v_stride + e0), vv = load8(vb + j * s.v_stride + e0 + 8);
        for (int r = 0; r < kRows; ++r) {
          const V8 pv = splat<kSse>(p[r * kBk + j]);
          acc[r][0] += pv * va;
          acc[r][1] += pv * vv;
        }
      }
      for (int r = 0; r < kRows; ++r) {
        store8(o + r * d + e0, acc[r][0]);
        store8(o + r * d + e0 + 8, acc[r][1]);
      }
    }
    for (; e0 + 8 <= d; e0 += 8) {
      V8 acc[kRows];
      for (int r = 0; r < kRows; ++r) acc[r] = load8(o + r * d + e0) * splat<kSse>(corr[r]);
      for (int64_t j = 0; j < nk; ++j) {
        const V8 va = load8(vb + j * s.v_stride + e0);
        for (int r = 0; r < kRows; ++r) acc[r] += splat<kSse>(p[r * kBk + j]) * va;
      }
      for (int r = 0; r < kRows; ++r) store8(o + r * d + e0, acc[r]);
    }
    for (int64_t e = e0; e < d; ++e)
      for (int r = 0; r < kRows; ++r) {
        float acc = o[r * d + e] * corr[r];
        for (int64_t j = 0; j < nk; ++j) acc += p[r * kBk + j] * vb[j * s.v_stride + e];
        o[r * d + e] = acc;
      }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = 1.f / l[r];
    for (int64_t e = 0; e < d; ++e) out[r * s.o_stride + e] = o[r * d + e] * inv;
  }
}

// Work items [lo, hi) of (batch, head, query block).
template <bool kSse>
SDPAL_INLINE void run_items(const AttentionShape& s, const float* q, const float* kpack, const float* v, float* out,
                            int64_t lo, int64_t hi, float* buf) {
  const int64_t npanels = (s.kv_len + 15) / 16, qblocks = (s.q_len + kRows - 1) / kRows;
  for (int64_t idx = lo; idx < hi; ++idx) {
    const int64_t bh = idx / qblocks, i0 = idx % qblocks * kRows;
    const int64_t b = bh / s.heads, h = bh % s.heads;
    Block blk{&s, kpack + bh * npanels * s.head_dim * 16, v + b * s.v_batch_stride + h * s.head_dim, i0,
              std::min<int64_t>(kRows, s.q_len - i0)};
    run_block<kSse>(blk, q + b * s.q_batch_stride + i0 * s.q_stride + h * s.head_dim,
              out + b * s.o_batch_stride + i0 * s.o_stride + h * s.head_dim, buf);
  }
}

SDPAL_TARGET_AVX2 void run_items_avx2(const AttentionShape& s, const float* q, const float* kpack, const float* v,
                                      float* out, int64_t lo, int64_t hi, float* buf) {
  run_items<false>(s, q, kpack, v, out, lo, hi, buf);
}
void run_items_generic(const AttentionShape& s, const float* q, const float* kpack, const float* v, float* out,
                       int64_t lo, int64_t hi, float* buf) {
  run_items<true>(s, q, kpack, v, out, lo, hi, buf);
}

}  // namespace

void attention_portable(const AttentionShape& s, const float* q, const float* k, const float* v, float* out) {
  if (s.batch == 0 || s.q_len == 0) return;
  const int64_t npanels = (s.kv_len + 15) / 16;
  thread_local ScratchBuffer kpack_buf;
  float* kpack = kpack_buf.get(size_t(s.batch * s.heads * npanels * s.head_dim * 16));
  pack_k_panels(s, k, kpack);
  auto* items_fn = cpu_features().avx2_fma() ? run_items_avx2 : run_items_generic;
  const int64_t qblocks = (s.q_len + kRows - 1) / kRows;
  parallel_for(s.batch * s.heads * qblocks, [&](int64_t lo, int64_t hi) {
    thread_local ScratchBuffer scratch;
    float* buf = scratch.get(size_t(2 * kRows * s.head_dim + kRows * kBk));
    items_fn(s, q, kpack, v, out, lo, hi, buf);
  }, 4);
}

}  // namespace sdpal::cpu::attention_detail
