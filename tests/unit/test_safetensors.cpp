// safetensors reader/writer: the Python library's files, its layout, and hostile headers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace sdpal {
namespace {

using sdpal::testing::overwrite;
using sdpal::testing::read_all;

namespace fs = std::filesystem;
const std::string kGolden = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/io/safetensors_ref.safetensors";



class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdpal_st_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  // An 8-byte length, the header text and the data section.
  std::string st(const std::string& header, const std::string& data = "") {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = char(uint64_t(header.size()) >> (8 * i));
    return out + header + data;
  }
  // Expects open_safetensors to throw `code` with a message containing the path and `needle`.
  void expect_error(const std::string& bytes, ErrorCode code, const std::string& needle) {
    const std::string p = file("bad" + std::to_string(counter_++) + ".safetensors", bytes);
    try {
      open_safetensors(p);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  std::string dir_;
  int counter_ = 0;
};

TEST_F(Safetensors, ReadsFileWrittenByPythonLibrary) {
  auto f = open_safetensors(kGolden);
  EXPECT_EQ(f->path(), kGolden);
  EXPECT_EQ(f->metadata("format"), "pt");
  EXPECT_EQ(f->metadata("missing"), "");
  ASSERT_EQ(f->tensors().size(), 12u);
  const TensorView* t = f->find("f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F32);
  EXPECT_EQ(t->shape, (Shape{2, 3}));
  Tensor v = to_f32(*t);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(v.f32()[i], float(i % 7));
  Tensor h = to_f32(*f->find("f16"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.f32()[i], float(i % 7));
  Tensor b = to_f32(*f->find("bf16"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.f32()[i], float(i % 7));
  const TensorView* i64 = f->find("i64");
  ASSERT_EQ(i64->nbytes, 32u);
  int64_t x;
  std::memcpy(&x, i64->data + 24, 8);
  EXPECT_EQ(x, 3);
  EXPECT_EQ(f->find("u8")->data[6], 6);
  EXPECT_EQ(f->find("bool")->data[0], 0);
  EXPECT_EQ(f->find("bool")->data[1], 1);
  EXPECT_EQ(f->find("empty")->shape, (Shape{0, 4}));
  EXPECT_EQ(f->find("empty")->nbytes, 0u);
  EXPECT_EQ(f->find("scalar")->shape, Shape{});
  EXPECT_EQ(to_f32(*f->find("scalar")).f32()[0], 2.5f);
  EXPECT_EQ(f->find("nope"), nullptr);
}

TEST_F(Safetensors, WriterReproducesPythonLayoutByteForByte) {
  auto f = open_safetensors(kGolden);
  std::vector<TensorToWrite> ts;
  for (const TensorView& v : f->tensors()) ts.push_back(TensorToWrite::from(v));
  std::reverse(ts.begin(), ts.end());  // input order must not matter
  const std::string out = dir_ + "/copy.safetensors";
  write_safetensors(out, ts, {{"format", "pt"}});
  EXPECT_EQ(read_all(out), read_all(kGolden));
}

TEST_F(Safetensors, RoundTripsTensorsAndMetadata) {
  Tensor a = Tensor::empty({3, 2});
  for (int i = 0; i < 6; ++i) a.f32()[i] = 0.25f * i;
  const uint16_t half[3] = {0x3c00, 0x4000, 0xc000};  // 1, 2, -2
  const std::string out = dir_ + "/rt.safetensors";
  write_safetensors(out,
                    {TensorToWrite::from("a", a), {"h", DType::F16, {3}, half, 6}, {"z", DType::I8, {0, 5}, nullptr, 0}},
                    {{"k1", "v1"}, {"k2", "\xc3\xa9t\xc3\xa9"}});
  auto f = open_safetensors(out);
  EXPECT_EQ(f->metadata("k2"), "\xc3\xa9t\xc3\xa9");
  EXPECT_EQ(f->metadata("k1"), "v1");
  Tensor back = to_f32(*f->find("a"));
  EXPECT_EQ(back.shape(), (Shape{3, 2}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back.f32()[i], 0.25f * i);
  Tensor h = to_f32(*f->find("h"));
  EXPECT_EQ(h.f32()[2], -2.0f);
  EXPECT_EQ(f->find("z")->shape, (Shape{0, 5}));
  // The data section starts 8-byte aligned, like the Python writer's.
  MappedFile m(out);
  EXPECT_EQ((f->find("a")->data - m.data()) % 8, 0);
}

TEST_F(Safetensors, OverwritesAtomicallyAndLeavesNoTempFiles) {
  const std::string out = dir_ + "/w.safetensors";
  const float one = 1.0f;
  write_safetensors(out, {{"x", DType::F32, {1}, &one, 4}});
  write_safetensors(out, {{"y", DType::F32, {1}, &one, 4}});
  auto f = open_safetensors(out);
  EXPECT_EQ(f->find("x"), nullptr);
  EXPECT_NE(f->find("y"), nullptr);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(Safetensors, WriterRejectsBadInputAndUnwritablePaths) {
  const float v[2] = {1, 2};
  auto code = [&](const std::string& path, const std::vector<TensorToWrite>& ts) {
    try {
      write_safetensors(path, ts);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  const std::string out = dir_ + "/o.safetensors";
  EXPECT_EQ(code(out, {{"a", DType::F32, {2}, v, 8}, {"a", DType::F32, {2}, v, 8}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(out, {{"a", DType::F32, {3}, v, 8}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(out, {{"a", DType::F32, {-2}, v, 8}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(out, {{"__metadata__", DType::F32, {2}, v, 8}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(dir_ + "/no/such/dir/o.safetensors", {{"a", DType::F32, {2}, v, 8}}), ErrorCode::kIo);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 0);
}

TEST_F(Safetensors, RejectsTruncatedFilesAndBadHeaderLengths) {
  expect_error("", ErrorCode::kFormat, "too short");
  expect_error("abc", ErrorCode::kFormat, "too short");
  std::string past = st("{}");
  past[0] = 100;  // header length 100, file has 2 bytes after it
  expect_error(past, ErrorCode::kFormat, "past the end");
  std::string huge(8, '\0');
  huge[4] = 1;  // 2^32
  expect_error(huge + "{}", ErrorCode::kFormat, "100 MB");
  std::string max(8, '\xff');
  expect_error(max + "{}", ErrorCode::kFormat, "100 MB");
}

TEST_F(Safetensors, RejectsMalformedHeaders) {
  expect_error(st("{not json"), ErrorCode::kFormat, "not valid JSON");
  expect_error(st("[1, 2]"), ErrorCode::kFormat, "not a JSON object");
  expect_error(st(R"({"a": 5})"), ErrorCode::kFormat, "tensor 'a'");
  expect_error(st(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})"), ErrorCode::kFormat, "dtype");
  expect_error(st(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})"), ErrorCode::kFormat, "shape");
  expect_error(st(R"({"a": {"dtype": "F32", "shape": [1]}})", "abcd"), ErrorCode::kFormat, "data_offsets");
  expect_error(st(R"({"__metadata__": {"k": 1}})"), ErrorCode::kFormat, "__metadata__");
  expect_error(st(R"({"__metadata__": "x"})"), ErrorCode::kFormat, "__metadata__");
  expect_error(st(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", "abcdefgh"),
               ErrorCode::kFormat, "duplicate key 'a'");
}

TEST_F(Safetensors, RejectsBadDtypesShapesAndOffsets) {
  const std::string d8 = "abcdefgh";
  expect_error(st(R"({"w": {"dtype": "F17", "shape": [2], "data_offsets": [0, 8]}})", d8), ErrorCode::kFormat, "unknown dtype");
  expect_error(st(R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", d8), ErrorCode::kUnsupported, "tensor 'w'");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", d8), ErrorCode::kFormat, "negative");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", d8), ErrorCode::kFormat, "tensor 'w'");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", d8),
               ErrorCode::kFormat, "too large");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", d8), ErrorCode::kFormat, "needs 12 bytes");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", d8), ErrorCode::kFormat, "exceed");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", d8), ErrorCode::kFormat, "reversed");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-1, 7]}})", d8), ErrorCode::kFormat, "tensor 'w'");
  expect_error(st(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}})", d8), ErrorCode::kFormat, "tensor 'w'");
  expect_error(st(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", d8), ErrorCode::kFormat, "overlaps");
  expect_error(st(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", d8), ErrorCode::kFormat, "gap");
  expect_error(st(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", d8), ErrorCode::kFormat, "trailing");
}

// Every single-byte corruption and truncation of a valid file either opens (data bytes) or
// throws Error; none may crash or read out of bounds (run under ASan in CI).
TEST_F(Safetensors, CorruptedAndTruncatedFilesFailCleanly) {
  const std::string good = read_all(kGolden);
  const std::string p = dir_ + "/m.safetensors";
  int opened = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    overwrite(p, bytes);
    try {
      auto f = open_safetensors(p);
      for (const TensorView& v : f->tensors()) {
        uint32_t sum = 0;
        for (size_t i = 0; i < v.nbytes; ++i) sum += v.data[i];
        EXPECT_GE(sum, 0u);
      }
      ++opened;
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (size_t i = 0; i < good.size(); ++i)
    for (int flip : {0x01, 0x80, 0xff}) {
      std::string b = good;
      b[i] = char(b[i] ^ flip);
      attempt(b);
    }
  for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n));
  EXPECT_GT(rejected, 0);
  EXPECT_GT(opened, 0);
}

TEST_F(Safetensors, MissingFileIsAnIoError) {
  try {
    open_safetensors(dir_ + "/missing.safetensors");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos);
  }
  EXPECT_THROW(open_safetensors(dir_), Error);  // a directory
}

}  // namespace
}  // namespace sdpal
