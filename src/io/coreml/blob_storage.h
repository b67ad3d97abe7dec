// Core ML's weight file (`weights/weight.bin`, MILBlob storage format version 2), memory-mapped.
//
// Layout (all little-endian): a 64-byte file header {uint32 count; uint32 version = 2; 56 reserved
// bytes}, then for each blob a 64-byte metadata record {uint32 sentinel = 0xDEADBEEF; uint32 data
// type code; uint64 size in bytes; uint64 data offset; uint64 padding bits (sub-byte types, iOS18
// files; garbage in older files for other types); 32 reserved bytes} followed by the data; records
// and data are 64-byte aligned by Apple's writer. A MIL BLOBFILE offset points at a metadata record.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/coreml/mil_ast.h"
#include "io/mapped_file.h"

namespace sdpal::coreml {

// Data type codes of blob records (every code MILBlob defines up to coremltools 8.x / 9.0).
enum class BlobDType : uint32_t {
  kFloat16 = 1, kFloat32 = 2, kUInt8 = 3, kInt8 = 4, kBFloat16 = 5, kInt16 = 6, kUInt16 = 7,
  kInt4 = 8, kUInt1 = 9, kUInt2 = 10, kUInt4 = 11, kUInt3 = 12, kUInt6 = 13, kInt32 = 14,
  kUInt32 = 15, kFloat8E4M3FN = 16, kFloat8E5M2 = 17,
};

std::optional<BlobDType> blob_dtype_from_code(uint32_t code);
const char* blob_dtype_name(BlobDType t);  // "Float16", "UInt6", ...
int blob_dtype_bits(BlobDType t);
MilDType blob_dtype_to_mil(BlobDType t);
std::optional<BlobDType> mil_dtype_to_blob(MilDType t);  // nullopt for types a weight file cannot hold

constexpr uint32_t kBlobSentinel = 0xDEADBEEFu;
constexpr uint64_t kBlobHeaderSize = 64;
constexpr uint64_t kBlobMetadataSize = 64;
constexpr uint64_t kBlobAlignment = 64;

struct BlobView {
  uint64_t metadata_offset = 0;
  BlobDType dtype = BlobDType::kFloat16;
  uint64_t data_offset = 0;
  const uint8_t* data = nullptr;  // into the mapping; aligned to the element size for >= 2-byte types
  uint64_t nbytes = 0;
  uint32_t padding_bits = 0;      // sub-byte types: unused bits in the last byte; 0 otherwise
  uint64_t num_elements() const { return (nbytes * 8 - padding_bits) / uint64_t(blob_dtype_bits(dtype)); }
};

class BlobStorage {
 public:
  // Validates the file header (size, version 2). Throws Error(kFormat) naming the file.
  explicit BlobStorage(std::shared_ptr<const MappedFile> file);
  // Bytes held by `owner` (e.g. a weight file inflated from a zip archive); `name` is for messages.
  BlobStorage(const uint8_t* data, size_t size, std::shared_ptr<const void> owner, std::string name);
  static std::shared_ptr<const BlobStorage> open(const std::string& path) {
    return std::make_shared<const BlobStorage>(MappedFile::open(path));
  }

  const std::string& name() const { return name_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  uint32_t count() const { return count_; }  // blob count from the header (not trusted)

  // The blob whose metadata record is at `offset`. Throws Error(kFormat) naming the file and offset
  // for an offset outside the file or inside the header, a bad sentinel, an unknown data type code,
  // a data range outside the file or over its own record, misaligned data, bad sub-byte padding.
  BlobView blob(uint64_t offset) const;
  // blob(offset), also checked to hold exactly `numel` elements of `dtype`; `what` names the MIL
  // variable for messages. Error(kFormat) on a type or size mismatch, Error(kUnsupported) for a
  // dtype a weight file cannot hold.
  BlobView blob_for(uint64_t offset, MilDType dtype, uint64_t numel, const std::string& what) const;
  // Metadata offsets of the header's `count` blobs, walked in file order the way MILBlob does
  // (each record follows the previous blob's data, 64-byte aligned); each is validated.
  std::vector<uint64_t> offsets() const;

 private:
  void check_header();

  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  uint32_t count_ = 0;
};

}  // namespace sdpal::coreml
