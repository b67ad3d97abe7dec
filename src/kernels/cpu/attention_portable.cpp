// Portable flash attention: same online softmax as the AVX-512 kernel, one query row at a time in
// plain loops (GCC vectorizes the dot products and row updates for the baseline ISA).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/vec_math.h"

namespace sdpal::cpu::attention_detail {
namespace {

constexpr int64_t kBk = 128;  // keys per online-softmax step

void run_row(const AttentionShape& s, const float* q, const float* k, const float* v, float* out, float* buf) {
  const int64_t d = s.head_dim;
  float* qs = buf;        // [d] scaled query
  float* o = qs + d;      // [d] unnormalized output
  float* p = o + d;       // [kBk] scores then probabilities
  for (int64_t e = 0; e < d; ++e) {
    qs[e] = q[e] * s.scale;
    o[e] = 0.f;
  }
  float m = -std::numeric_limits<float>::infinity(), l = 0.f;
  const int64_t kv_end = s.kv_len;  // the caller limits kv_len for causal rows
  for (int64_t k0 = 0; k0 < kv_end; k0 += kBk) {
    const int64_t nk = std::min(kBk, kv_end - k0);
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < nk; ++j) {
      const float* kr = k + (k0 + j) * s.k_stride;
      float acc = 0.f;
      for (int64_t e = 0; e < d; ++e) acc += qs[e] * kr[e];
      p[j] = acc;
      mx = std::max(mx, acc);
    }
    const float m_new = std::max(m, mx);
    const float corr = m == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(m - m_new);
    float sum = 0.f;
    for (int64_t j = 0; j < nk; ++j) {
      p[j] = vm::exp_f32(p[j] - m_new);
      sum += p[j];
    }
    l = l * corr + sum;
    m = m_new;
    for (int64_t e = 0; e < d; ++e) o[e] *= corr;
    for (int64_t j = 0; j < nk; ++j) {
      const float* vr = v + (k0 + j) * s.v_stride;
      const float pj = p[j];
      for (int64_t e = 0; e < d; ++e) o[e] += pj * vr[e];
    }
  }
  const float inv = 1.f / l;
  for (int64_t e = 0; e < d; ++e) out[e] = o[e] * inv;
}

}  // namespace

void attention_portable(const AttentionShape& s, const float* q, const float* k, const float* v, float* out) {
  if (s.batch == 0 || s.q_len == 0) return;
  const int64_t rows = s.batch * s.heads * s.q_len;
  parallel_for(rows, [&](int64_t lo, int64_t hi) {
    thread_local ScratchBuffer scratch;
    float* buf = scratch.get(size_t(2 * s.head_dim + kBk));
    for (int64_t idx = lo; idx < hi; ++idx) {
      const int64_t i = idx % s.q_len, bh = idx / s.q_len;
      const int64_t b = bh / s.heads, h = bh % s.heads;
      AttentionShape row = s;
      if (s.causal) row.kv_len = std::min(s.kv_len, i + 1);
      run_row(row, q + b * s.q_batch_stride + i * s.q_stride + h * s.head_dim,
              k + b * s.k_batch_stride + h * s.head_dim, v + b * s.v_batch_stride + h * s.head_dim,
              out + b * s.o_batch_stride + i * s.o_stride + h * s.head_dim, buf);
    }
  }, 16);
}

}  // namespace sdpal::cpu::attention_detail
