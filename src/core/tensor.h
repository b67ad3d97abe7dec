// Tensor: a dense, row-major, 64-byte-aligned array with a shape.
// Activations are kept channels-last (NHWC for images, [B, S, C] for sequences): the channel
// dimension is innermost so that convolutions, norms and attention read contiguous rows and
// the sequence view of an image ([B, H*W, C]) is a free reshape.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace sdpal {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised storage of the given shape and type.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  // A copy of `n` floats.
  static Tensor from_data(const Shape& shape, const float* data);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool defined() const { return data_ != nullptr || numel() == 0; }

  float* f32();
  const float* f32() const;
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  // Same storage, new shape (numel must match).
  Tensor reshape(const Shape& shape) const;
  // Deep copy.
  Tensor clone() const;
  // Rows [begin, end) of the outermost dimension, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // True when no other tensor shares this storage, so an op may overwrite it in place (for
  // activations only: a weight viewing a read-only mapping is never handed to such an op).
  bool sole_owner() const { return storage_ && storage_.use_count() == 1; }

 private:
  Shape shape_;
  DType dtype_ = DType::F32;
  std::shared_ptr<uint8_t> storage_;
  uint8_t* data_ = nullptr;
};

}  // namespace sdpal
