// Internal to the attention kernel: the shape with defaults resolved, and the two implementations
// (tests call both directly, whatever the CPU dispatch would pick).
#pragma once
#include <cstdint>

#include "kernels/cpu/attention.h"

namespace sdpal::cpu::attention_detail {

// Validates `s` and fills zero strides with the packed defaults.
AttentionShape resolve(const AttentionShape& s);

// Both take a resolved shape.
void attention_portable(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);
void attention_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, float* out);

}  // namespace sdpal::cpu::attention_detail
