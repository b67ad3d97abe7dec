#include "io/tensor_file.h"

namespace sdpal {

Tensor to_f32(const TensorView& v) {
  Tensor t = Tensor::empty(v.shape);
  convert_to_f32(v.dtype, v.data, t.f32(), size_t(v.numel()));
  return t;
}

}  // namespace sdpal
