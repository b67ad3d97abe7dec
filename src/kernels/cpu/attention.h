// Scaled dot-product attention with an online softmax (flash-style): the [Sq, Sk] score matrix
// is never materialized; each query block streams over key blocks.
#pragma once
#include <cstdint>

#include "core/precision.h"

namespace sdpal::cpu {

struct AttentionShape {
  int64_t batch = 1, heads = 1, q_len = 0, kv_len = 0, head_dim = 0;
  // Row strides (in floats) between consecutive tokens; head h of token t starts at
  // base + t * stride + h * head_dim. This reads [B, S, heads*D] projections without transposes.
  // 0 means packed: heads * head_dim.
  int64_t q_stride = 0, k_stride = 0, v_stride = 0, o_stride = 0;
  // Strides between batch items (in floats). 0 means packed: len * row stride.
  int64_t q_batch_stride = 0, k_batch_stride = 0, v_batch_stride = 0, o_batch_stride = 0;
  float scale = 1.f;  // usually 1/sqrt(head_dim)
  bool causal = false;  // query i sees keys 0..i (CLIP text encoder; torch's is_causal, top-left aligned)
  // BF16: Q, K, V and the probabilities P are rounded to bf16 for the two products (fp32
  // accumulation) on AMX tiles, or AVX512-BF16 dot products on CPUs without AMX; the online
  // softmax, its running max/sum and the output stay fp32. Max error ~3e-3 of the output scale
  // (tests: <= 1e-2). Inputs and output are fp32 in both modes. F32 is bit-for-bit the fp32 kernel.
  // BF16 on a CPU without native bf16 is a kUnsupported error.
  Precision precision = Precision::F32;
};

// out[b, i, h, :] = softmax_j(scale * q[b, i, h, :] . k[b, j, h, :]) v[b, j, h, :], in fp32.
// Any head_dim >= 1 (fast paths are tuned for SD's 40, 64, 80, 160 and the VAE's 512); kv_len >= 1.
// Uses the AVX-512 kernel when cpu_features() allows it, else a portable one. out must not overlap
// q, k or v. Safe to call from several threads at once.
void attention(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);

}  // namespace sdpal::cpu
