#include "kernels/cpu/attention.h"

#include <algorithm>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/flop_counter.h"
#include "core/threads.h"
#include "kernels/cpu/attention_impl.h"

namespace sdpal::cpu {
namespace attention_detail {

AttentionShape resolve(const AttentionShape& in) {
  AttentionShape s = in;
  check(s.batch >= 0 && s.heads >= 1 && s.q_len >= 0 && s.kv_len >= 1 && s.head_dim >= 1, ErrorCode::kInvalidArgument,
        "attention: invalid shape (batch " + std::to_string(s.batch) + ", heads " + std::to_string(s.heads) +
            ", q_len " + std::to_string(s.q_len) + ", kv_len " + std::to_string(s.kv_len) + ", head_dim " +
            std::to_string(s.head_dim) + ")");
  const int64_t row = s.heads * s.head_dim;
  auto def = [](int64_t& v, int64_t d) {
    if (v == 0) v = d;
  };
  def(s.q_stride, row);
  def(s.k_stride, row);
  def(s.v_stride, row);
  def(s.o_stride, row);
  def(s.q_batch_stride, s.q_len * s.q_stride);
  def(s.k_batch_stride, s.kv_len * s.k_stride);
  def(s.v_batch_stride, s.kv_len * s.v_stride);
  def(s.o_batch_stride, s.q_len * s.o_stride);
  check(s.q_stride >= row && s.k_stride >= row && s.v_stride >= row && s.o_stride >= row,
        ErrorCode::kInvalidArgument, "attention: a row stride is smaller than heads * head_dim");
  return s;
}

void pack_k_panels(const AttentionShape& s, const float* k, float* kpack) {
  const int64_t d = s.head_dim, npanels = (s.kv_len + 15) / 16;
  parallel_for(s.batch * s.heads * npanels, [&](int64_t lo, int64_t hi) {
    for (int64_t idx = lo; idx < hi; ++idx) {
      const int64_t bh = idx / npanels, p = idx % npanels;
      const int64_t b = bh / s.heads, h = bh % s.heads;
      float* dst = kpack + idx * d * 16;
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t key = p * 16 + j;
        if (key < s.kv_len) {
          const float* src = k + b * s.k_batch_stride + key * s.k_stride + h * d;
          for (int64_t e = 0; e < d; ++e) dst[e * 16 + j] = src[e];
        } else {
          for (int64_t e = 0; e < d; ++e) dst[e * 16 + j] = 0.f;
        }
      }
    }
  }, 4);
}

}  // namespace attention_detail

void attention(const AttentionShape& shape, const float* q, const float* k, const float* v, float* out) {
  AttentionShape s = attention_detail::resolve(shape);
  if (s.batch == 0 || s.q_len == 0) return;
  check(q && k && v && out, ErrorCode::kInvalidArgument, "attention: null tensor pointer");
  const CpuFeatures& f = cpu_features();
  if (s.precision == Precision::BF16) {
    require_precision_supported(s.precision, "attention");
    // AMX tiles where usable (bench_peak: ~15x the fp32 FMA peak on Sapphire Rapids). Without AMX
    // in CPUID (Cooper Lake, Zen 4), AVX512-BF16 dot products. A CPU that has AMX but no tile
    // permission (Linux < 5.16) runs the fp32 kernel: there VDPBF16PS has half the FMA rate
    // (bench_peak), so the dot-product kernel would be slower than fp32.
    if (f.avx512_bf16 && amx_tiles_usable())
      attention_detail::attention_amx_bf16(s, q, k, v, out);
    else if (f.avx512_bf16 && !f.amx_bf16)
      attention_detail::attention_avx512_bf16(s, q, k, v, out);
    else
      attention_detail::attention_avx512(s, q, k, v, out);
  } else if (f.avx512_core()) {
    attention_detail::attention_avx512(s, q, k, v, out);
  } else {
    attention_detail::attention_portable(s, q, k, v, out);
  }
  // Two products of (scores) x head_dim multiply-adds each; causal rows see min(i + 1, kv_len) keys.
  int64_t scores = s.q_len * s.kv_len;
  if (s.causal) {
    const int64_t full = std::max<int64_t>(0, s.q_len - s.kv_len);  // rows that see every key
    const int64_t tri = s.q_len - full;                             // rows i < kv_len see i + 1 keys
    scores = full * s.kv_len + tri * (tri + 1) / 2;
  }
  count_flops(4 * s.batch * s.heads * scores * s.head_dim);
}

}  // namespace sdpal::cpu
