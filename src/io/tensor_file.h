// One interface for every weight-file format: a named set of read-only tensor views whose
// bytes live in a memory-mapped file (never copied by the reader).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/palettized.h"
#include "core/tensor.h"

namespace sdpal {

// A weight as a reader hands it out: dense bytes (`data`), or a palettized (LUT) source
// (`palettized` set, `data == nullptr`), which readers never expand: to_f32() decodes it, and
// cpu::Linear / cpu::Conv2d keep it packed and decode one layer per call (DESIGN.md, "Weights
// that stay packed").
struct TensorView {
  std::string name;
  DType dtype = DType::F32;       // dense: the element type; palettized: the LUT's decoded type
  Shape shape;                    // the dense shape (equal to palettized->shape when palettized)
  const uint8_t* data = nullptr;  // points into the mapped file; nullptr when palettized
  size_t nbytes = 0;              // dense bytes; palettized: packed index + LUT bytes
  // Palettized source (indices + LUT pointing into the mapped file), or null for a dense view.
  std::shared_ptr<const PalettizedView> palettized;
  // Keeps the bytes `data` / `palettized` point into alive (e.g. the mapped file) for holders that
  // outlive the TensorFile, such as a kernel keeping a packed weight. May be null: then whoever
  // uses the view past the reader's lifetime must keep the file alive themselves.
  std::shared_ptr<const void> owner;
  int64_t numel() const { return shape_numel(shape); }
  bool is_palettized() const { return palettized != nullptr; }
};

// A view of a palettized weight (shape and name from `p`); `owner` keeps its bytes alive.
TensorView palettized_tensor_view(PalettizedView p, std::shared_ptr<const void> owner = nullptr);

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

// The same elements viewed with another shape of equal size (row-major order kept), palettized
// sources included when their tables allow it (one table; or tables split along the first axis only,
// which must then keep its length): Error(kUnsupported) otherwise.
TensorView reshape_view(const TensorView& v, const Shape& shape);

// Converts any float view (or a palettized one, decoded) to a fresh F32 tensor of the same shape.
Tensor to_f32(const TensorView& v);

}  // namespace sdpal
