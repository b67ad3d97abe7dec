#include "coreml_layout.h"

namespace sdpal::testing {

Tensor apple_context_to_bsc(const Tensor& e) {
  const int64_t b = e.dim(0), c = e.dim(1), s = e.dim(3);
  Tensor out = Tensor::empty({b, s, c});
  for (int64_t i = 0; i < b; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t j = 0; j < s; ++j) out.f32()[(i * s + j) * c + k] = e.f32()[(i * c + k) * s + j];
  return out;
}

}  // namespace sdpal::testing
