// Naive attention with the full [Sq, Sk] score matrix and a double-precision softmax: the
// definition the flash kernel is tested against. Slow by design; for tests only.
#pragma once
#include "kernels/cpu/attention.h"

namespace sdpal::ref {

// Same shape conventions as cpu::attention (zero strides mean packed).
void attention(const cpu::AttentionShape& s, const float* q, const float* k, const float* v, float* out);

}  // namespace sdpal::ref
