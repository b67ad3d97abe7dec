// Apple's Core ML tensor layouts, for tests that feed goldens in Apple's form to sdpal's networks.
#pragma once
#include "core/tensor.h"

namespace sdpal::testing {

// encoder_hidden_states in Apple's [B, C, 1, S] -> sdpal's [B, S, C].
Tensor apple_context_to_bsc(const Tensor& e);

}  // namespace sdpal::testing
