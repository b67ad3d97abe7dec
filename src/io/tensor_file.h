// One interface for every weight-file format: a named set of read-only tensor views whose
// bytes live in a memory-mapped file (never copied by the reader).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace sdpal {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  int64_t numel() const { return shape_numel(shape); }
};

class TensorFile {
 public:
  virtual ~TensorFile() = default;
  virtual const std::string& path() const = 0;
  virtual const std::vector<TensorView>& tensors() const = 0;
  // nullptr when absent.
  virtual const TensorView* find(const std::string& name) const = 0;
  // Free-form string metadata (safetensors "__metadata__"), empty if none.
  virtual std::string metadata(const std::string& key) const { (void)key; return {}; }
};

// Converts any float view to a fresh F32 tensor of the same shape.
Tensor to_f32(const TensorView& v);

}  // namespace sdpal
