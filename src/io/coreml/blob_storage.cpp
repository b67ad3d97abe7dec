#include "io/coreml/blob_storage.h"

#include <cstring>

#include "core/error.h"

namespace sdpal::coreml {

namespace {

struct BlobDTypeInfo {
  BlobDType t;
  const char* name;
  int bits;
  MilDType mil;
};

constexpr BlobDTypeInfo kInfo[] = {
    {BlobDType::kFloat16, "Float16", 16, MilDType::kFp16},
    {BlobDType::kFloat32, "Float32", 32, MilDType::kFp32},
    {BlobDType::kUInt8, "UInt8", 8, MilDType::kUInt8},
    {BlobDType::kInt8, "Int8", 8, MilDType::kInt8},
    {BlobDType::kBFloat16, "BFloat16", 16, MilDType::kBf16},
    {BlobDType::kInt16, "Int16", 16, MilDType::kInt16},
    {BlobDType::kUInt16, "UInt16", 16, MilDType::kUInt16},
    {BlobDType::kInt4, "Int4", 4, MilDType::kInt4},
    {BlobDType::kUInt1, "UInt1", 1, MilDType::kUInt1},
    {BlobDType::kUInt2, "UInt2", 2, MilDType::kUInt2},
    {BlobDType::kUInt4, "UInt4", 4, MilDType::kUInt4},
    {BlobDType::kUInt3, "UInt3", 3, MilDType::kUInt3},
    {BlobDType::kUInt6, "UInt6", 6, MilDType::kUInt6},
    {BlobDType::kInt32, "Int32", 32, MilDType::kInt32},
    {BlobDType::kUInt32, "UInt32", 32, MilDType::kUInt32},
    {BlobDType::kFloat8E4M3FN, "Float8E4M3FN", 8, MilDType::kFp8E4M3FN},
    {BlobDType::kFloat8E5M2, "Float8E5M2", 8, MilDType::kFp8E5M2},
};

const BlobDTypeInfo& info(BlobDType t) {
  const uint32_t c = uint32_t(t);
  if (c < 1 || c > 17) fail(ErrorCode::kInternal, "bad blob dtype code");
  return kInfo[c - 1];
}

uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

std::optional<BlobDType> blob_dtype_from_code(uint32_t code) {
  if (code < 1 || code > 17) return std::nullopt;
  return BlobDType(code);
}
const char* blob_dtype_name(BlobDType t) { return info(t).name; }
int blob_dtype_bits(BlobDType t) { return info(t).bits; }
MilDType blob_dtype_to_mil(BlobDType t) { return info(t).mil; }

std::optional<BlobDType> mil_dtype_to_blob(MilDType t) {
  for (const auto& i : kInfo)
    if (i.mil == t) return i.t;
  return std::nullopt;
}

BlobStorage::BlobStorage(std::shared_ptr<const MappedFile> file)
    : owner_(file), data_(file->data()), size_(file->size()), name_(file->path()) {
  check_header();
}

BlobStorage::BlobStorage(const uint8_t* data, size_t size, std::shared_ptr<const void> owner, std::string name)
    : owner_(std::move(owner)), data_(data), size_(size), name_(std::move(name)) {
  check_header();
}

void BlobStorage::check_header() {
  if (size_ < kBlobHeaderSize)
    fail(ErrorCode::kFormat, name_ + ": weight file of " + std::to_string(size_) + " bytes is shorter than its 64-byte header");
  const uint32_t version = rd32(data_ + 4);
  if (version != 2)
    fail(ErrorCode::kFormat, name_ + ": weight file version " + std::to_string(version) + " (only version 2 is supported)");
  count_ = rd32(data_);
}

BlobView BlobStorage::blob(uint64_t offset) const {
  const std::string at = name_ + ": blob at offset " + std::to_string(offset);
  if (offset < kBlobHeaderSize || offset > size_ || size_ - offset < kBlobMetadataSize)
    fail(ErrorCode::kFormat, at + ": metadata outside the file (" + std::to_string(size_) + " bytes) or inside its header");
  const uint8_t* m = data_ + offset;
  const uint32_t sentinel = rd32(m);
  if (sentinel != kBlobSentinel) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", sentinel);
    fail(ErrorCode::kFormat, at + ": bad metadata sentinel " + buf + " (expected 0xdeadbeef)");
  }
  const uint32_t code = rd32(m + 4);
  const auto dt = blob_dtype_from_code(code);
  if (!dt) fail(ErrorCode::kFormat, at + ": unknown data type code " + std::to_string(code));
  BlobView v;
  v.metadata_offset = offset;
  v.dtype = *dt;
  v.nbytes = rd64(m + 8);
  v.data_offset = rd64(m + 16);
  const uint64_t padding = rd64(m + 24);
  if (v.data_offset > size_ || v.nbytes > size_ - v.data_offset)
    fail(ErrorCode::kFormat, at + ": data [" + std::to_string(v.data_offset) + ", +" + std::to_string(v.nbytes) +
                                 ") outside the file (" + std::to_string(size_) + " bytes)");
  if (v.data_offset < kBlobHeaderSize || (v.data_offset < offset + kBlobMetadataSize && v.data_offset + v.nbytes > offset))
    fail(ErrorCode::kFormat, at + ": data at " + std::to_string(v.data_offset) + " overlaps a header or its own metadata");
  const int bits = blob_dtype_bits(v.dtype);
  if (bits >= 16 && (v.data_offset % uint64_t(bits / 8)) != 0)
    fail(ErrorCode::kFormat, at + ": " + blob_dtype_name(v.dtype) + " data at " + std::to_string(v.data_offset) + " is misaligned");
  if (bits < 8) {  // the padding field only has meaning for sub-byte types
    if (padding >= 8 || (v.nbytes == 0 && padding != 0) || (v.nbytes * 8 - padding) % uint64_t(bits) != 0)
      fail(ErrorCode::kFormat, at + ": invalid padding of " + std::to_string(padding) + " bits for " + blob_dtype_name(v.dtype));
    v.padding_bits = uint32_t(padding);
  } else if (v.nbytes % uint64_t(bits / 8) != 0) {
    fail(ErrorCode::kFormat, at + ": " + std::to_string(v.nbytes) + " bytes is not a whole number of " + blob_dtype_name(v.dtype));
  }
  v.data = data_ + v.data_offset;
  return v;
}

BlobView BlobStorage::blob_for(uint64_t offset, MilDType dtype, uint64_t numel, const std::string& what) const {
  const auto want = mil_dtype_to_blob(dtype);
  if (!want)
    fail(ErrorCode::kUnsupported, name_ + ": '" + what + "' has type " + mil_dtype_name(dtype) + ", which a weight file cannot hold");
  const BlobView v = blob(offset);
  if (v.dtype != *want)
    fail(ErrorCode::kFormat, name_ + ": '" + what + "' is " + mil_dtype_name(dtype) + " but its blob at offset " +
                                 std::to_string(offset) + " holds " + blob_dtype_name(v.dtype));
  const uint64_t bytes = mil_packed_nbytes(dtype, numel);
  const uint64_t pad = bytes * 8 - numel * uint64_t(blob_dtype_bits(v.dtype));
  if (v.nbytes != bytes || (blob_dtype_bits(v.dtype) < 8 && v.padding_bits != pad))
    fail(ErrorCode::kFormat, name_ + ": '" + what + "' needs " + std::to_string(numel) + " elements (" + std::to_string(bytes) +
                                 " bytes) but its blob at offset " + std::to_string(offset) + " has " + std::to_string(v.nbytes) +
                                 " bytes and " + std::to_string(v.padding_bits) + " padding bits");
  return v;
}

std::vector<uint64_t> BlobStorage::offsets() const {
  std::vector<uint64_t> r;
  uint64_t at = kBlobHeaderSize;
  for (uint32_t i = 0; i < count_; ++i) {
    if (at > size_) fail(ErrorCode::kFormat, name_ + ": header counts " + std::to_string(count_) + " blobs but the file ends after " + std::to_string(i));
    const BlobView v = blob(at);
    r.push_back(at);
    uint64_t next = v.data_offset + v.nbytes;  // <= size_, validated by blob()
    if (next % kBlobAlignment) next += kBlobAlignment - next % kBlobAlignment;
    if (next <= at) fail(ErrorCode::kFormat, name_ + ": blob " + std::to_string(i) + " at offset " + std::to_string(at) + " does not advance the walk");
    at = next;
  }
  return r;
}

}  // namespace sdpal::coreml
