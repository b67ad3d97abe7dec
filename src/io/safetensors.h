// The safetensors format: an 8-byte little-endian header length, a JSON header describing each
// tensor (dtype, shape, byte range in the data section) and the raw little-endian data.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal {

// Memory-maps and validates `path`; views point into the mapping. Throws Error(kIo) if the file
// cannot be read, Error(kFormat) naming the file (and tensor) if it is malformed, and
// Error(kUnsupported) for valid dtypes this build does not handle (F8, U16, U32, U64).
// Like the reference reader, it requires the tensors to tile the data section exactly.
// tensors() are in data-offset order; metadata() reads "__metadata__".
std::unique_ptr<TensorFile> open_safetensors(const std::string& path);

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;  // numel * dtype_size bytes, little-endian
  size_t nbytes = 0;

  static TensorToWrite from(const std::string& name, const Tensor& t) {
    return {name, t.dtype(), t.shape(), t.raw(), t.nbytes()};
  }
  static TensorToWrite from(const TensorView& v) { return {v.name, v.dtype, v.shape, v.data, v.nbytes}; }
};

// Writes a file the Python library reads (and lays out the same way: tensors ordered by dtype,
// then name, header padded with spaces to 8 bytes). Written to a temporary file and renamed,
// so `path` is never left partial. Throws Error(kInvalidArgument) for duplicate names or a
// size that does not match the shape, Error(kIo) when writing fails.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sdpal
