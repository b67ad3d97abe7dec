#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/tensor_cache.h"

namespace sdpal {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    check(d >= 0 && d < (int64_t(1) << 40), ErrorCode::kInvalidArgument, "invalid tensor shape " + shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  size_t capacity = 0;
  void* p = nullptr;
  try {
    p = tensor_storage_alloc(t.nbytes(), &capacity);
  } catch (const Error&) {
    fail(ErrorCode::kInternal, "out of memory allocating tensor " + shape_str(shape));
  }
  t.storage_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p),
                                        [capacity](uint8_t* q) { tensor_storage_free(q, capacity); });
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::from_data(const Shape& shape, const float* data) {
  Tensor t = empty(shape);
  std::memcpy(t.data_, data, t.nbytes());
  return t;
}

float* Tensor::f32() {
  check(dtype_ == DType::F32, ErrorCode::kInternal, "tensor is not F32");
  return reinterpret_cast<float*>(data_);
}

const float* Tensor::f32() const {
  check(dtype_ == DType::F32, ErrorCode::kInternal, "tensor is not F32");
  return reinterpret_cast<const float*>(data_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  check(shape_numel(shape) == numel(), ErrorCode::kInternal,
        "cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  check(rank() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], ErrorCode::kInternal, "slice0 out of range");
  Tensor t = *this;
  int64_t row = numel() / (shape_[0] ? shape_[0] : 1);
  t.shape_[0] = end - begin;
  t.data_ = data_ + size_t(begin * row) * dtype_size(dtype_);
  return t;
}

}  // namespace sdpal
