#include "io/tensor_file.h"

#include <algorithm>

#include "core/error.h"

namespace sdpal {

TensorView palettized_tensor_view(PalettizedView p, std::shared_ptr<const void> owner) {
  validate_palettized(p);
  TensorView v;
  v.name = p.name;
  v.shape = p.shape;
  v.dtype = p.lut_dtype == DType::F32 || p.lut_dtype == DType::BF16 ? p.lut_dtype : DType::F16;
  v.nbytes = p.indices_nbytes + p.lut_nbytes;
  v.palettized = std::make_shared<const PalettizedView>(std::move(p));
  v.owner = std::move(owner);
  return v;
}

Tensor to_f32(const TensorView& v) {
  Tensor t = Tensor::empty(v.shape);
  if (v.palettized) {
    check(shape_numel(v.palettized->shape) == v.numel(), ErrorCode::kFormat,
          "tensor '" + v.name + "': palettized source '" + v.palettized->name + "' has shape " +
              shape_str(v.palettized->shape) + ", view has " + shape_str(v.shape));
    decode_palettized(*v.palettized, 0, v.numel(), t.f32());
    return t;
  }
  convert_to_f32(v.dtype, v.data, t.f32(), size_t(v.numel()));
  return t;
}

}  // namespace sdpal
