#include "kernels/reference/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sdpal::ref {

void attention(const cpu::AttentionShape& in, const float* q, const float* k, const float* v, float* out) {
  cpu::AttentionShape s = in;
  const int64_t row = s.heads * s.head_dim;
  if (!s.q_stride) s.q_stride = row;
  if (!s.k_stride) s.k_stride = row;
  if (!s.v_stride) s.v_stride = row;
  if (!s.o_stride) s.o_stride = row;
  if (!s.q_batch_stride) s.q_batch_stride = s.q_len * s.q_stride;
  if (!s.k_batch_stride) s.k_batch_stride = s.kv_len * s.k_stride;
  if (!s.v_batch_stride) s.v_batch_stride = s.kv_len * s.v_stride;
  if (!s.o_batch_stride) s.o_batch_stride = s.q_len * s.o_stride;
  const int64_t d = s.head_dim;
  std::vector<double> scores(size_t(s.q_len * s.kv_len));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h) {
      const float* qb = q + b * s.q_batch_stride + h * d;
      const float* kb = k + b * s.k_batch_stride + h * d;
      const float* vb = v + b * s.v_batch_stride + h * d;
      float* ob = out + b * s.o_batch_stride + h * d;
      for (int64_t i = 0; i < s.q_len; ++i) {
        // Causal (top-left aligned, as torch's is_causal): query i sees keys 0..i.
        const int64_t visible = s.causal ? std::min(s.kv_len, i + 1) : s.kv_len;
        double* sc = scores.data() + i * s.kv_len;
        double mx = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          double acc = 0;
          for (int64_t e = 0; e < d; ++e) acc += double(qb[i * s.q_stride + e]) * double(kb[j * s.k_stride + e]);
          sc[j] = acc * double(s.scale);
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < visible; ++j) {
          sc[j] = std::exp(sc[j] - mx);
          sum += sc[j];
        }
        for (int64_t e = 0; e < d; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < visible; ++j) acc += sc[j] * double(vb[j * s.v_stride + e]);
          ob[i * s.o_stride + e] = float(acc / sum);
        }
      }
    }
}

}  // namespace sdpal::ref
