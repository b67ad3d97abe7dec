#include "kernels/cpu/attention.h"

#include "core/cpu_features.h"
#include "core/error.h"
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

}  // namespace attention_detail

void attention(const AttentionShape& shape, const float* q, const float* k, const float* v, float* out) {
  AttentionShape s = attention_detail::resolve(shape);
  if (s.batch == 0 || s.q_len == 0) return;
  check(q && k && v && out, ErrorCode::kInvalidArgument, "attention: null tensor pointer");
  if (cpu_features().avx512_core())
    attention_detail::attention_avx512(s, q, k, v, out);
  else
    attention_detail::attention_portable(s, q, k, v, out);
}

}  // namespace sdpal::cpu
