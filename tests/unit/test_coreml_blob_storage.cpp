// weight.bin (MILBlob storage v2): coremltools-written files and every malformed-input rejection.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/coreml/blob_storage.h"
#include "test_util.h"

namespace sdpal::coreml {
namespace {

using sdpal::testing::code_of;

const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/coreml/";


// Builds a weight file in memory, Apple's layout by default.
struct FileBuilder {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(64, 0);
  FileBuilder() { set32(0, 0), set32(4, 2); }
  void set32(size_t at, uint32_t v) { std::memcpy(bytes.data() + at, &v, 4); }
  void set64(size_t at, uint64_t v) { std::memcpy(bytes.data() + at, &v, 8); }
  // Appends a blob; returns its metadata offset.
  uint64_t add(uint32_t code, const std::vector<uint8_t>& data, uint64_t padding = 0) {
    while (bytes.size() % 64) bytes.push_back(0);
    const uint64_t off = bytes.size();
    bytes.resize(off + 64 + data.size());
    set32(off, 0xDEADBEEF), set32(off + 4, code), set64(off + 8, data.size()), set64(off + 16, off + 64), set64(off + 24, padding);
    std::memcpy(bytes.data() + off + 64, data.data(), data.size());
    uint32_t count;
    std::memcpy(&count, bytes.data(), 4);
    set32(0, count + 1);
    return off;
  }
  BlobStorage storage() const {
    auto keep = std::make_shared<std::vector<uint8_t>>(bytes);
    return BlobStorage(keep->data(), keep->size(), keep, "test.bin");
  }
};

TEST(BlobStorage, ReadsCoremltoolsFilesIncludingSubByteTypes) {
  auto s = BlobStorage::open(kDir + "tiny_ios18.mlpackage/Data/com.apple.CoreML/weights/weight.bin");
  const auto offs = s->offsets();
  ASSERT_EQ(offs.size(), s->count());
  ASSERT_EQ(offs.size(), 10u);
  int sub_byte = 0;
  for (uint64_t o : offs) {
    const BlobView b = s->blob(o);
    EXPECT_EQ(b.data_offset, o + 64);
    EXPECT_EQ(b.data_offset % 64, 0u);
    if (blob_dtype_bits(b.dtype) < 8) ++sub_byte;
    if (b.dtype == BlobDType::kUInt3) {  // tensor<uint3, [5, 7]>: 105 bits in 14 bytes
      EXPECT_EQ(b.nbytes, 14u);
      EXPECT_EQ(b.padding_bits, 7u);
      EXPECT_EQ(b.num_elements(), 35u);
      EXPECT_NO_THROW(s->blob_for(o, MilDType::kUInt3, 35, "w3.indices"));
      EXPECT_EQ(code_of([&] { s->blob_for(o, MilDType::kUInt3, 34, "w3.indices"); }), ErrorCode::kFormat);
    }
  }
  EXPECT_EQ(sub_byte, 5);  // uint4, uint2, uint6, uint3, uint1 indices
}

TEST(BlobStorage, DTypeCodesMatchMILBlob) {
  const std::pair<uint32_t, const char*> codes[] = {
      {1, "Float16"}, {2, "Float32"}, {3, "UInt8"}, {4, "Int8"}, {5, "BFloat16"}, {6, "Int16"},
      {7, "UInt16"}, {8, "Int4"}, {9, "UInt1"}, {10, "UInt2"}, {11, "UInt4"}, {12, "UInt3"},
      {13, "UInt6"}, {14, "Int32"}, {15, "UInt32"}, {16, "Float8E4M3FN"}, {17, "Float8E5M2"}};
  for (auto [code, name] : codes) {
    auto t = blob_dtype_from_code(code);
    ASSERT_TRUE(t) << code;
    EXPECT_STREQ(blob_dtype_name(*t), name);
    EXPECT_EQ(mil_dtype_to_blob(blob_dtype_to_mil(*t)), t);
  }
  EXPECT_FALSE(blob_dtype_from_code(0));
  EXPECT_FALSE(blob_dtype_from_code(18));
  EXPECT_FALSE(mil_dtype_to_blob(MilDType::kInt64));  // a weight file cannot hold these
  EXPECT_FALSE(mil_dtype_to_blob(MilDType::kString));
}

TEST(BlobStorage, ChecksTypeAndSizeAgainstTheDeclaredTensor) {
  FileBuilder f;
  const uint64_t a = f.add(1, std::vector<uint8_t>(8));  // 4 x fp16
  const BlobStorage s = f.storage();
  EXPECT_EQ(s.blob_for(a, MilDType::kFp16, 4, "w").nbytes, 8u);
  std::string msg;
  EXPECT_EQ(code_of([&] { s.blob_for(a, MilDType::kFp32, 2, "w"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("holds Float16"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { s.blob_for(a, MilDType::kFp16, 5, "w"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("'w' needs 5 elements"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { s.blob_for(a, MilDType::kInt64, 1, "w"); }), ErrorCode::kUnsupported);
}

TEST(BlobStorage, RejectsMalformedFiles) {
  std::string msg;
  auto expect_format = [&](const FileBuilder& f, uint64_t off, const char* needle) {
    const BlobStorage s = f.storage();
    EXPECT_EQ(code_of([&] { s.blob(off); }, &msg), ErrorCode::kFormat) << needle;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find("test.bin"), std::string::npos) << msg;
  };
  {  // bad sentinel
    FileBuilder f;
    const uint64_t a = f.add(1, std::vector<uint8_t>(8));
    f.set32(a, 0xDEADBEEE);
    expect_format(f, a, "bad metadata sentinel 0xdeadbeee");
  }
  {  // unknown dtype
    FileBuilder f;
    const uint64_t a = f.add(18, std::vector<uint8_t>(8));
    expect_format(f, a, "unknown data type code 18");
  }
  {  // offset past the end, inside the header, metadata cut short
    FileBuilder f;
    const uint64_t a = f.add(1, std::vector<uint8_t>(8));
    expect_format(f, f.bytes.size() + 64, "outside the file");
    expect_format(f, 0, "inside its header");
    expect_format(f, f.bytes.size() - 32, "outside the file");
    expect_format(f, uint64_t(-64), "outside the file");
    (void)a;
  }
  {  // data range past the end (size and offset overflow)
    FileBuilder f;
    const uint64_t a = f.add(1, std::vector<uint8_t>(8));
    f.set64(a + 8, 10);
    expect_format(f, a, "outside the file");
    f.set64(a + 8, uint64_t(-2));
    expect_format(f, a, "outside the file");
    f.set64(a + 8, 8), f.set64(a + 16, uint64_t(-8));
    expect_format(f, a, "outside the file");
  }
  {  // data over its own record / the file header
    FileBuilder f;
    const uint64_t a = f.add(2, std::vector<uint8_t>(16));
    f.set64(a + 16, a + 32);
    expect_format(f, a, "overlaps");
    f.set64(a + 16, 0);
    expect_format(f, a, "overlaps");
  }
  {  // misaligned fp32 data, a size that is not whole elements
    FileBuilder f;
    const uint64_t a = f.add(2, std::vector<uint8_t>(16));
    f.set64(a + 16, a + 66), f.set64(a + 8, 8);
    expect_format(f, a, "misaligned");
    f.set64(a + 16, a + 64), f.set64(a + 8, 6);
    expect_format(f, a, "whole number");
  }
  {  // sub-byte padding: 8 or more bits, or not a multiple of the element width
    FileBuilder f;
    const uint64_t a = f.add(13, std::vector<uint8_t>(3), 8);  // uint6
    expect_format(f, a, "invalid padding");
    f.set64(a + 24, 3);
    expect_format(f, a, "invalid padding");
    f.set64(a + 24, 0);
    EXPECT_EQ(f.storage().blob(a).num_elements(), 4u);
  }
  {  // padding is garbage before iOS18 for byte-sized types: ignored
    FileBuilder f;
    const uint64_t a = f.add(1, std::vector<uint8_t>(8), 0x1234567890ull);
    EXPECT_EQ(f.storage().blob(a).padding_bits, 0u);
  }
}

TEST(BlobStorage, RejectsBadHeadersAndWalks) {
  std::string msg;
  {
    FileBuilder f;
    f.bytes.resize(63);  // truncated header
    EXPECT_EQ(code_of([&] { f.storage(); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("shorter than its 64-byte header"), std::string::npos) << msg;
  }
  {
    FileBuilder f;
    f.set32(4, 1);  // Espresso blob_v1
    EXPECT_EQ(code_of([&] { f.storage(); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("version 1"), std::string::npos) << msg;
  }
  {
    FileBuilder f;
    f.add(1, std::vector<uint8_t>(8));
    f.add(3, std::vector<uint8_t>(5));
    EXPECT_EQ(f.storage().offsets().size(), 2u);
    f.set32(0, 3);  // header claims a third blob
    EXPECT_EQ(code_of([&] { f.storage().offsets(); }), ErrorCode::kFormat);
    f.set32(0, 0xFFFFFFFF);
    EXPECT_EQ(code_of([&] { f.storage().offsets(); }), ErrorCode::kFormat);
  }
}

TEST(BlobStorage, TruncatedFileOnDisk) {
  const std::string src = kDir + "tiny_ios16.mlpackage/Data/com.apple.CoreML/weights/weight.bin";
  const std::string dst = ::testing::TempDir() + "/sdpal_truncated_weight.bin";
  std::filesystem::copy_file(src, dst, std::filesystem::copy_options::overwrite_existing);
  const auto full = BlobStorage::open(dst)->offsets();
  std::filesystem::resize_file(dst, std::filesystem::file_size(dst) - 10);
  auto s = BlobStorage::open(dst);
  std::string msg;
  EXPECT_EQ(code_of([&] { s->offsets(); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("outside the file"), std::string::npos) << msg;
  EXPECT_NO_THROW(s->blob(full.front()));  // blobs before the cut still read
  std::filesystem::remove(dst);
  EXPECT_EQ(code_of([&] { BlobStorage::open(dst); }), ErrorCode::kIo);
}

}  // namespace
}  // namespace sdpal::coreml
