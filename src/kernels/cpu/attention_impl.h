// Internal to the attention kernel: the shape with defaults resolved, and the implementations
// (tests call both directly, whatever the CPU dispatch would pick).
#pragma once
#include <cstdint>

#include "kernels/cpu/attention.h"

namespace sdpal::cpu::attention_detail {

// Validates `s` and fills zero strides with the packed defaults.
AttentionShape resolve(const AttentionShape& s);

// K of every (batch, head) as panels of 16 keys, [D][16] each, so scores for 16 keys are built
// with contiguous vector FMAs; keys past kv_len are zero. kpack holds
// batch * heads * ceil(kv_len / 16) * head_dim * 16 floats; panel p of (b, h) starts at
// ((b * heads + h) * npanels + p) * head_dim * 16.
void pack_k_panels(const AttentionShape& s, const float* k, float* kpack);

// All take a resolved shape.
void attention_portable(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);
void attention_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);
// bf16 products (AVX512-BF16 dot products), fp32 softmax; needs avx512_core and avx512_bf16.
// Ignores s.precision.
void attention_avx512_bf16(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);
// bf16 products on AMX tiles, fp32 softmax; needs avx512_core, avx512_bf16 and amx_tiles_usable().
// Ignores s.precision. Same rounding points as attention_avx512_bf16.
void attention_amx_bf16(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);

}  // namespace sdpal::cpu::attention_detail
