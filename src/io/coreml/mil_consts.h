// Constant operands of a MIL program: inline literals, `const` ops' values, and BLOBFILE values
// that live in weight files, as TensorView (dense) or PalettizedView (constexpr_lut_to_dense).
// Nothing is copied: views point into the literal's storage or the mapped weight file.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/palettized.h"
#include "io/coreml/blob_storage.h"
#include "io/coreml/mil_ast.h"
#include "io/tensor_file.h"

namespace sdpal::coreml {

// The weight files a program's BLOBFILE paths name. Paths must be "@model_path/<relative path>"
// with a safe relative path; each file is opened once, on first use, by `opener(relative path)`.
class WeightFiles {
 public:
  using Opener = std::function<std::shared_ptr<const BlobStorage>(const std::string& relative_path)>;
  explicit WeightFiles(Opener opener) : opener_(std::move(opener)) {}
  // Files under a model directory on disk (the .mlmodelc folder, or Data/com.apple.CoreML of a package).
  static std::shared_ptr<WeightFiles> in_directory(const std::string& model_dir);

  // Throws Error(kFormat) for a path outside "@model_path/", Error(kIo) if the file cannot be read.
  const BlobStorage& storage(const std::string& blob_path) const;

 private:
  Opener opener_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::shared_ptr<const BlobStorage>> open_;
};

// The relative path of a BLOBFILE path ("@model_path/weights/weight.bin" -> "weights/weight.bin");
// throws Error(kFormat) unless it has that prefix and a safe relative remainder.
std::string blob_relative_path(const std::string& blob_path);

// The constant bound to `b`, or nullptr if it is a computed variable: an inline value, or the `val`
// of the `const` op in `block` that produces it (needs validate() to have resolved references).
const MilValue* const_value(const MilBlock& block, const MilBinding& b);
// Operand `name` of `op` as a constant: a single-binding input (iOS17+ style) or, failing that, an
// attribute (iOS16 constexpr ops keep operands there). nullptr if absent or not constant.
const MilValue* const_operand(const MilBlock& block, const MilOp& op, std::string_view name);

// A constant tensor's bytes, wherever they live.
struct ConstBytes {
  MilType type;                   // a static tensor type
  const uint8_t* data = nullptr;  // little-endian, packed LSB first for sub-byte types
  size_t nbytes = 0;
};

// Immediate tensors and blobs (checked against their type: dtype and byte count). `what` names
// the variable in messages. Error(kFormat) for lists, tuples, dicts and strings.
ConstBytes const_bytes(const MilValue& v, const WeightFiles* weights, const std::string& what);
// const_bytes as a TensorView; Error(kUnsupported) for dtypes sdpal has no DType for (uint16,
// uint32, uint64, int4, sub-byte, fp8): use const_bytes or MilValue::ints() for those.
TensorView const_tensor_view(const MilValue& v, const WeightFiles* weights, const std::string& what);

// The packed weight a constexpr_lut_to_dense op describes, in either form:
//  iOS16/17: operands indices (uint8 [M]), lut (T [2^n]), shape (uint32 [K]) -- attributes in text;
//  iOS18:    indices (uintN, index shape), lut (T [g_0..g_{K-1}, 2^n, V]), optional vector_axis.
// Checks the op's declared output type against the result. Throws Error(kFormat) naming the op.
PalettizedView palettized_view(const MilBlock& block, const MilOp& op, const WeightFiles* weights);

}  // namespace sdpal::coreml
