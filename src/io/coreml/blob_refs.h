// Every weight-file reference a MIL program makes (BLOBFILE values in const ops, iOS16 constexpr
// attributes, inline iOS18 operands, nested blocks), and the layout they imply for each file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/coreml/mil_ast.h"

namespace sdpal::coreml {

struct BlobRef {
  std::string path;      // BLOBFILE path, e.g. "@model_path/weights/weight.bin"
  uint64_t offset = 0;   // metadata record offset
  MilDType dtype = MilDType::kFp16;
  uint64_t numel = 0;
  uint64_t nbytes = 0;   // packed data bytes
  std::string what;      // "op 'name' (const).val" for messages
};

// In program order (functions, ops, then operand order). A blob shared by several ops appears
// once per reference.
std::vector<BlobRef> collect_blob_refs(const MilProgram& program);

// One blob per distinct offset of one file, ordered by offset.
struct BlobSlot {
  uint64_t offset = 0;
  MilDType dtype = MilDType::kFp16;
  uint64_t numel = 0;
  uint64_t nbytes = 0;
  int refs = 0;  // references to it
  std::string what;
};

struct BlobLayout {
  std::string path;
  std::vector<BlobSlot> slots;
  uint64_t min_file_size = 0;  // end of the last blob's data (the writer adds no padding after it)
};

// Groups the references of each file and checks they are consistent: references to one offset
// agree on dtype and element count; no blob's metadata record + data overlaps the next blob or the
// 64-byte file header, assuming Apple's layout (data right after its 64-byte record). Throws
// Error(kFormat) naming both variables on a conflict. One layout per distinct path, in path order.
std::vector<BlobLayout> plan_blob_layouts(const std::vector<BlobRef>& refs);

}  // namespace sdpal::coreml
