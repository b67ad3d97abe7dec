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

TensorView reshape_view(const TensorView& v, const Shape& shape) {
  check(shape_numel(shape) == v.numel(), ErrorCode::kInvalidArgument,
        "tensor '" + v.name + "': cannot view " + shape_str(v.shape) + " as " + shape_str(shape));
  TensorView r = v;
  r.shape = shape;
  if (!v.palettized) return r;
  // Row-major order is kept, so the packed indices serve as they are; the tables must not depend on
  // an axis other than the first (one table, or tables per group of output channels).
  const PalettizedView& p = *v.palettized;
  const size_t k = p.shape.size();
  bool ok = p.vector_size() == 1 && p.lut_shape.size() == 1;  // one table: any shape
  if (p.vector_size() == 1 && p.lut_shape.size() == k + 2 && !shape.empty() && p.shape[0] == shape[0]) {
    ok = true;
    for (size_t d = 1; d < k; ++d) ok = ok && p.lut_shape[d] == 1;
  }
  check(ok, ErrorCode::kUnsupported,
        "tensor '" + v.name + "': its palettized tables do not allow viewing " + shape_str(p.shape) + " as " +
            shape_str(shape));
  auto q = std::make_shared<PalettizedView>(p);
  q->shape = shape;
  if (p.lut_shape.size() == k + 2) {
    q->lut_shape = {p.lut_shape[0]};
    for (size_t d = 1; d < shape.size(); ++d) q->lut_shape.push_back(1);
    q->lut_shape.push_back(p.lut_shape[k]);
    q->lut_shape.push_back(p.lut_shape[k + 1]);
  }
  validate_palettized(*q);
  r.palettized = q;
  return r;
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
