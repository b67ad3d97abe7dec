// ZIP reader, restricted unpickler and torch checkpoints: files made by torch.save/zipfile,
// plus archives and pickles built here to hit every validation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/pickle.h"
#include "io/pickle_checkpoint.h"
#include "io/safetensors.h"
#include "io/zip_archive.h"
#include "test_util.h"

namespace sdpal {
namespace {

using sdpal::testing::overwrite;

using namespace std::string_literals;  // pickles contain NUL bytes

namespace fs = std::filesystem;
const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/io/";


// ---- a minimal zip writer for building test archives --------------------------------------
struct ZipSpec {
  std::string name;
  std::string data;
  bool deflate = false;
};

struct BuiltZip {
  std::string bytes;
  std::vector<size_t> local;  // local header offsets
  size_t cd = 0;              // central directory offset
  size_t eocd = 0;
};

void put16(std::string& s, uint32_t v) { s += char(v & 0xff), s += char(v >> 8 & 0xff); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xffff), put16(s, v >> 16); }
void put64(std::string& s, uint64_t v) { put32(s, uint32_t(v)), put32(s, uint32_t(v >> 32)); }
void set32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = char(v >> (8 * i) & 0xff);
}

std::string raw_deflate(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = uInt(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// zip64: sizes and offsets in ZIP64 extra fields, and ZIP64 end records, as torch writes them.
BuiltZip build_zip(const std::vector<ZipSpec>& specs, bool zip64 = false) {
  BuiltZip z;
  std::string cd;
  for (const ZipSpec& s : specs) {
    const std::string payload = s.deflate ? raw_deflate(s.data) : s.data;
    const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(s.data.data()), uInt(s.data.size())));
    z.local.push_back(z.bytes.size());
    std::string& b = z.bytes;
    put32(b, 0x04034b50), put16(b, 20), put16(b, 0), put16(b, s.deflate ? 8 : 0), put32(b, 0), put32(b, crc);
    put32(b, uint32_t(payload.size())), put32(b, uint32_t(s.data.size())), put16(b, uint16_t(s.name.size())), put16(b, 0);
    b += s.name + payload;
    put32(cd, 0x02014b50), put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, s.deflate ? 8 : 0), put32(cd, 0);
    put32(cd, crc);
    put32(cd, zip64 ? 0xFFFFFFFF : uint32_t(payload.size())), put32(cd, zip64 ? 0xFFFFFFFF : uint32_t(s.data.size()));
    put16(cd, uint16_t(s.name.size())), put16(cd, zip64 ? 28 : 0), put16(cd, 0), put16(cd, 0), put16(cd, 0), put32(cd, 0);
    put32(cd, zip64 ? 0xFFFFFFFF : uint32_t(z.local.back()));
    cd += s.name;
    if (zip64) put16(cd, 1), put16(cd, 24), put64(cd, s.data.size()), put64(cd, payload.size()), put64(cd, z.local.back());
  }
  z.cd = z.bytes.size();
  z.bytes += cd;
  if (zip64) {
    const size_t end64 = z.bytes.size();
    std::string& b = z.bytes;
    put32(b, 0x06064b50), put64(b, 44), put16(b, 45), put16(b, 45), put32(b, 0), put32(b, 0);
    put64(b, specs.size()), put64(b, specs.size()), put64(b, cd.size()), put64(b, z.cd);
    put32(b, 0x07064b50), put32(b, 0), put64(b, end64), put32(b, 1);
  }
  z.eocd = z.bytes.size();
  std::string& b = z.bytes;
  put32(b, 0x06054b50), put16(b, 0), put16(b, 0);
  put16(b, zip64 ? 0xFFFF : uint16_t(specs.size())), put16(b, zip64 ? 0xFFFF : uint16_t(specs.size()));
  put32(b, zip64 ? 0xFFFFFFFF : uint32_t(cd.size())), put32(b, zip64 ? 0xFFFFFFFF : uint32_t(z.cd)), put16(b, 0);
  return z;
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdpal_ckpt_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  template <class F>
  void expect_error(F&& fn, ErrorCode code, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  std::string dir_;
};

// ---- ZIP --------------------------------------------------------------------------------------
using Zip = TempDir;

TEST_F(Zip, ReadsStoredAndDeflatedEntriesFromPythonZipfile) {
  auto zip = ZipArchive::open(kDir + "deflated.zip");
  ASSERT_EQ(zip->entries().size(), 3u);
  EXPECT_EQ(zip->entries()[0].name, "dir/");
  const ZipEntry* stored = zip->find("dir/stored.txt");
  ASSERT_NE(stored, nullptr);
  ZipBytes s = zip->read(*stored);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s.data), s.size), "hello, stored entry\n");
  EXPECT_EQ(s.owned, nullptr);  // a view into the mapping
  EXPECT_TRUE(s.data >= zip->file()->data() && s.data + s.size <= zip->file()->data() + zip->file()->size());
  const ZipEntry* deflated = zip->find("dir/deflated.bin");
  ASSERT_NE(deflated, nullptr);
  EXPECT_EQ(deflated->method, 8);
  ZipBytes d = zip->read(*deflated);
  ASSERT_EQ(d.size, 100000u);
  ASSERT_NE(d.owned, nullptr);
  for (size_t i = 0; i < d.size; ++i) ASSERT_EQ(d.data[i], uint8_t(i * i % 251)) << i;
  EXPECT_EQ(zip->find("dir/none"), nullptr);
}

TEST_F(Zip, ReadsBuiltArchivesWithAndWithoutZip64) {
  for (bool zip64 : {false, true}) {
    BuiltZip z = build_zip({{"a/one", "first"}, {"a/two", std::string(5000, 'x') + "y", true}, {"a/empty", ""}}, zip64);
    auto zip = ZipArchive::open(file(zip64 ? "z64.zip" : "z.zip", z.bytes));
    ASSERT_EQ(zip->entries().size(), 3u);
    ZipBytes two = zip->read(*zip->find("a/two"));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(two.data), two.size), std::string(5000, 'x') + "y");
    EXPECT_EQ(zip->read(*zip->find("a/empty")).size, 0u);
    EXPECT_EQ(zip->find("a/one")->local_header_offset, 0u);
  }
  auto empty = ZipArchive::open(file("empty.zip", build_zip({}).bytes));
  EXPECT_TRUE(empty->entries().empty());
}

TEST_F(Zip, RejectsBadOffsetsAndHeaders) {
  const std::vector<ZipSpec> specs = {{"a", "hello"}, {"b", "world!"}};
  const BuiltZip z = build_zip(specs);
  auto bad = [&](const std::string& name, std::string bytes, ErrorCode code, const std::string& needle) {
    const std::string p = file(name, bytes);
    expect_error([&] { ZipArchive::open(p); }, code, needle);
  };
  bad("short.zip", "PK", ErrorCode::kFormat, "too short");
  bad("noend.zip", z.bytes.substr(0, z.eocd), ErrorCode::kFormat, "end of central directory");
  std::string b = z.bytes;
  set32(b, z.eocd + 16, uint32_t(b.size()));  // central directory offset past EOF
  bad("cdoff.zip", b, ErrorCode::kFormat, "central directory out of range");
  b = z.bytes;
  b[z.eocd + 10] = 50;  // 50 entries cannot fit
  bad("count.zip", b, ErrorCode::kFormat, "entry count");
  b = z.bytes;
  set32(b, z.cd + 42, 1000000);  // local header offset of entry "a"
  bad("lho.zip", b, ErrorCode::kFormat, "entry 'a': local header offset");
  b = z.bytes;
  b[z.local[1]] = 'X';
  bad("lsig.zip", b, ErrorCode::kFormat, "entry 'b': bad local header signature");
  b = z.bytes;
  b[z.local[1] + 30] = 'c';  // local name differs
  bad("lname.zip", b, ErrorCode::kFormat, "name differs");
  b = z.bytes;
  set32(b, z.cd + 20, 1000), set32(b, z.cd + 24, 1000);  // sizes run into the central directory
  bad("size.zip", b, ErrorCode::kFormat, "entry 'a': data runs past");
  b = z.bytes;
  set32(b, z.cd + 24, 4);  // stored with compressed != uncompressed
  bad("stored.zip", b, ErrorCode::kFormat, "stored entry");
  bad("dup.zip", build_zip({{"a", "1"}, {"a", "2"}}).bytes, ErrorCode::kFormat, "duplicate entry 'a'");
  BuiltZip z64 = build_zip(specs, true);
  b = z64.bytes;
  set32(b, z64.eocd - 12, 0x7fffffff);  // ZIP64 end record offset in the locator
  bad("z64.zip", b, ErrorCode::kFormat, "ZIP64 end record");
  b = z64.bytes;
  b[z.cd + 46 + 1 + 2] = 8;  // ZIP64 extra field of entry "a" claims 8 bytes: too short
  bad("z64extra.zip", b, ErrorCode::kFormat, "ZIP64 extra");
}

TEST_F(Zip, ChecksCrcMethodAndEncryptionOnRead) {
  BuiltZip z = build_zip({{"a", "hello"}, {"d", std::string(300, 'q'), true}});
  std::string b = z.bytes;
  b[z.local[0] + 31] = 'J';  // corrupt stored data
  auto zip = ZipArchive::open(file("crc.zip", b));
  expect_error([&] { zip->read(*zip->find("a")); }, ErrorCode::kFormat, "CRC-32");
  EXPECT_EQ(zip->read(*zip->find("a"), /*verify_crc=*/false).size, 5u);
  b = z.bytes;
  b[z.local[1] + 31] ^= 0x5a;  // corrupt deflate stream
  auto zip2 = ZipArchive::open(file("inflate.zip", b));
  expect_error([&] { zip2->read(*zip2->find("d")); }, ErrorCode::kFormat, "entry 'd'");
  b = z.bytes;
  b[z.cd + 10] = 12;  // bzip2
  auto zip3 = ZipArchive::open(file("method.zip", b));
  expect_error([&] { zip3->read(*zip3->find("a")); }, ErrorCode::kUnsupported, "method 12");
  b = z.bytes;
  b[z.cd + 8] = 1;  // encrypted
  auto zip4 = ZipArchive::open(file("enc.zip", b));
  expect_error([&] { zip4->read(*zip4->find("a")); }, ErrorCode::kUnsupported, "encrypted");
  b = z.bytes;
  const size_t d_cd = z.cd + 46 + 1;  // second central entry
  set32(b, d_cd + 24, 100000000);     // claims an absurd uncompressed size
  auto zip5 = ZipArchive::open(file("bomb.zip", b));
  expect_error([&] { zip5->read(*zip5->find("d")); }, ErrorCode::kFormat, "implausible");
}

TEST_F(Zip, RejectsUnsafeExtractionPaths) {
  for (const char* ok : {"a", "a/b/c.txt", "a/..b", "..a/b", "dir/"}) EXPECT_TRUE(ZipArchive::is_safe_path(ok)) << ok;
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../b", "a/..", "..", "C:x", "a\\b"})
    EXPECT_FALSE(ZipArchive::is_safe_path(bad)) << bad;
  auto zip = ZipArchive::open(file("p.zip", build_zip({{"../evil", "x"}, {"fine/name", "y"}}).bytes));
  EXPECT_EQ(zip->safe_path(*zip->find("fine/name")), "fine/name");
  expect_error([&] { zip->safe_path(*zip->find("../evil")); }, ErrorCode::kFormat, "unsafe entry path '../evil'");
}

// ---- restricted unpickler ---------------------------------------------------------------------
PyRef run_pickle(const std::string& bytes, const UnpickleHooks& hooks = {}) {
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), hooks, "test.pkl");
}

using Pickle = TempDir;

TEST_F(Pickle, BuildsPlainValues) {
  // {'a': [1, -2, 300, 70000, -5 (LONG1), 2**40 (LONG1), 0.5, True, None, 'é', b'xy', (1,), ('s', 's')]}
  const std::string p =
      "\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01](K\x01J\xfe\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x01\xfb\x8a\x06"
      "\x00\x00\x00\x00\x00\x01G?\xe0\x00\x00\x00\x00\x00\x00\x88NX\x02\x00\x00\x00\xc3\xa9" "C\x02xyK\x01\x85\x8c\x01"
      "sq\x03h\x03\x86" "eu."s;
  PyRef root = run_pickle(p);
  ASSERT_EQ(root->kind, PyKind::kDict);
  const PyObject* a = root->get("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->kind, PyKind::kList);
  ASSERT_EQ(a->items.size(), 13u);
  EXPECT_EQ(a->items[0]->integer, 1);
  EXPECT_EQ(a->items[1]->integer, -2);
  EXPECT_EQ(a->items[2]->integer, 300);
  EXPECT_EQ(a->items[3]->integer, 70000);
  EXPECT_EQ(a->items[4]->integer, -5);
  EXPECT_EQ(a->items[5]->integer, int64_t(1) << 40);
  EXPECT_EQ(a->items[6]->real, 0.5);
  EXPECT_TRUE(a->items[7]->boolean);
  EXPECT_EQ(a->items[8]->kind, PyKind::kNone);
  EXPECT_EQ(a->items[9]->str, "\xc3\xa9");
  EXPECT_EQ(a->items[10]->kind, PyKind::kBytes);
  EXPECT_EQ(a->items[11]->kind, PyKind::kTuple);
  EXPECT_EQ(a->items[12]->items.size(), 2u);
  EXPECT_EQ(a->items[12]->items[0], a->items[12]->items[1]);  // memo shares the object
}

TEST_F(Pickle, RefusesGlobalsOpcodesAndMalformedStreams) {
  auto err = [&](const std::string& bytes, ErrorCode code, const std::string& needle, const UnpickleHooks& h = {}) {
    expect_error([&] { run_pickle(bytes, h); }, code, needle);
  };
  const std::string os_system = "\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00ls\x85R."s;
  err(os_system, ErrorCode::kFormat, "global 'os.system' is not allowed");
  err("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."s, ErrorCode::kFormat, "'builtins.eval'");
  UnpickleHooks allow_all;  // an allowed global still cannot be called without a call hook
  allow_all.allow_global = [](const std::string&, const std::string&) { return true; };
  err(os_system, ErrorCode::kFormat, "call of 'os.system' is not allowed", allow_all);
  err("(ios\nsystem\n."s, ErrorCode::kUnsupported, "0x69 ('i')");
  err("\x80\x02I1\n."s, ErrorCode::kUnsupported, "0x49 ('I')");
  err("\x80\x09."s, ErrorCode::kUnsupported, "protocol 9");
  err("\x80\x02}q"s, ErrorCode::kFormat, "truncated");
  err("\x80\x02X\xff\x00\x00\x00" "ab."s, ErrorCode::kFormat, "past the end");
  err("\x80\x02}"s, ErrorCode::kFormat, "truncated");
  err("\x80\x02."s, ErrorCode::kFormat, "stack");
  err("\x80\x02K\x01K\x02."s, ErrorCode::kFormat, "stack not empty");
  err("\x80\x02t."s, ErrorCode::kFormat, "MARK");
  err("\x80\x02(\x85."s, ErrorCode::kFormat, "underflow");
  err("\x80\x02h\x05."s, ErrorCode::kFormat, "memo index 5");
  err("\x80\x02Nr\xff\xff\xff\x00."s, ErrorCode::kFormat, "too large");
  err("\x80\x02]q\x00h\x00" "a."s, ErrorCode::kFormat, "contains itself");
  err("\x80\x02]q\x00\x85h\x00K\x01" "a."s, ErrorCode::kFormat, "already placed");  // mutate after nesting
  err("\x80\x02K\x01K\x02" "a."s, ErrorCode::kFormat, "APPEND to a int");
  err("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."s, ErrorCode::kUnsupported, "64 bits");
  err("\x80\x02NQ."s, ErrorCode::kUnsupported, "persistent id");
  err("\x80\x02"s + std::string(300, ']') + std::string(299, 'a') + ".", ErrorCode::kFormat, "nested too deeply");
}

// ---- torch checkpoints ------------------------------------------------------------------------
using Checkpoint = TempDir;

void expect_same_tensors(const TensorFile& got, const TensorFile& want) {
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const TensorView& w : want.tensors()) {
    SCOPED_TRACE(w.name);
    const TensorView* g = got.find(w.name);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->dtype, w.dtype);
    EXPECT_EQ(g->shape, w.shape);
    ASSERT_EQ(g->nbytes, w.nbytes);
    EXPECT_EQ(std::memcmp(g->data, w.data, w.nbytes), 0);
  }
}

TEST_F(Checkpoint, ReadsTorchSaveCheckpoints) {
  auto want = open_safetensors(kDir + "tiny_expected.safetensors");
  for (const char* name : {"tiny.ckpt", "tiny_p4.ckpt"}) {
    SCOPED_TRACE(name);
    auto ckpt = open_pickle_checkpoint(kDir + name);
    expect_same_tensors(*ckpt, *want);
    EXPECT_EQ(ckpt->find("global_step"), nullptr);  // not a tensor
    EXPECT_EQ(ckpt->tensors().front().name, "0.weight");  // dict order is kept
    // Two views of one storage: offsets 2 and 6 floats into the same bytes.
    EXPECT_EQ(ckpt->find("shared.second")->data - ckpt->find("shared.first")->data, 4 * 4);
    EXPECT_EQ(ckpt->find("param")->shape, (Shape{2, 2}));
    EXPECT_EQ(ckpt->find("model.c.bf16")->dtype, DType::BF16);
  }
}

TEST_F(Checkpoint, RejectsHostileAndUnsupportedFiles) {
  expect_error([] { open_pickle_checkpoint(kDir + "evil_system.ckpt"); }, ErrorCode::kFormat, "'posix.system' is not allowed");
  expect_error([] { open_pickle_checkpoint(kDir + "noncontig.ckpt"); }, ErrorCode::kFormat, "tensor 't': non-contiguous");
  expect_error([] { open_pickle_checkpoint(kDir + "legacy.ckpt"); }, ErrorCode::kUnsupported, "legacy");
  expect_error([] { open_pickle_checkpoint(kDir + "tiny_expected.safetensors"); }, ErrorCode::kFormat, "not a torch checkpoint");
  expect_error([&] { open_pickle_checkpoint(dir_ + "/missing.ckpt"); }, ErrorCode::kIo, "missing.ckpt");
}

// A checkpoint {'w': tensor} whose storage '0' holds `numel` floats; `offset`, `size`, `stride`
// describe the tensor; `data` is the storage entry's content.
std::string tensor_pickle(const std::string& storage_type, int numel, int offset, int size, int stride) {
  std::string p = "\x80\x02}(X\x01\x00\x00\x00" "wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00" "storage"s;
  p += "ctorch\n" + storage_type + "\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK"s;
  p += char(numel);
  p += "tQK";
  p += char(offset);
  p += "K";
  p += char(size);
  p += "\x85K";
  p += char(stride);
  p += "\x85\x89" "ccollections\nOrderedDict\n)RtRu.";
  return p;
}

TEST_F(Checkpoint, ValidatesStoragesAndOffsets) {
  const std::string floats(16, '\0');  // 4 floats
  auto ckpt = [&](const std::string& name, const std::string& pkl, const std::string& data, bool deflate = false) {
    return file(name, build_zip({{"arc/data.pkl", pkl}, {"arc/data/0", data, deflate}}).bytes);
  };
  auto ok = open_pickle_checkpoint(ckpt("ok.ckpt", tensor_pickle("FloatStorage", 4, 1, 3, 1), floats, true));
  ASSERT_NE(ok->find("w"), nullptr);
  EXPECT_EQ(ok->find("w")->shape, Shape{3});
  EXPECT_EQ(ok->find("w")->nbytes, 12u);

  auto err = [&](const std::string& path, ErrorCode code, const std::string& needle) {
    expect_error([&] { open_pickle_checkpoint(path); }, code, needle);
  };
  err(ckpt("off.ckpt", tensor_pickle("FloatStorage", 4, 2, 3, 1), floats), ErrorCode::kFormat, "tensor 'w': storage offset 2 + 3");
  err(ckpt("numel.ckpt", tensor_pickle("FloatStorage", 5, 0, 3, 1), floats), ErrorCode::kFormat, "has 16 bytes");
  err(ckpt("stride.ckpt", tensor_pickle("FloatStorage", 4, 0, 2, 2), floats), ErrorCode::kFormat, "non-contiguous");
  err(ckpt("type.ckpt", tensor_pickle("Storage", 4, 0, 2, 1), floats), ErrorCode::kFormat, "'torch.Storage' is not allowed");
  err(file("nostorage.ckpt", build_zip({{"arc/data.pkl", tensor_pickle("FloatStorage", 4, 0, 4, 1)}}).bytes),
      ErrorCode::kFormat, "'arc/data/0' is missing");
  err(file("nopkl.ckpt", build_zip({{"arc/other", "x"}}).bytes), ErrorCode::kFormat, "no data.pkl");
  err(ckpt("list.ckpt", "\x80\x02]q\x00."s, floats), ErrorCode::kFormat, "top-level object is a list");
  err(ckpt("call.ckpt", "\x80\x02" "ctorch\nFloatStorage\n)R."s, floats), ErrorCode::kFormat, "'torch.FloatStorage' is not allowed");
  err(ckpt("pid.ckpt", "\x80\x02}(X\x01\x00\x00\x00" "wX\x01\x00\x00\x00" "xQu."s, floats), ErrorCode::kFormat, "persistent id");
  err(file("big.ckpt", build_zip({{"arc/data.pkl", tensor_pickle("FloatStorage", 4, 0, 4, 1)},
                                  {"arc/byteorder", "big"}, {"arc/data/0", floats}}).bytes),
      ErrorCode::kUnsupported, "big-endian");

  // A corrupt storage is caught by its CRC unless verification is off.
  BuiltZip z = build_zip({{"arc/data.pkl", tensor_pickle("FloatStorage", 4, 0, 4, 1)}, {"arc/data/0", floats}});
  z.bytes[z.local[1] + 30 + 10] = 1;
  const std::string corrupt = file("corrupt.ckpt", z.bytes);
  err(corrupt, ErrorCode::kFormat, "CRC-32");
  EXPECT_EQ(open_pickle_checkpoint(corrupt, /*verify_crc=*/false)->find("w")->data[0], 1);
}

// Corrupting any byte of the pickle (rebuilt with a valid CRC) or of the archive itself must
// give a checkpoint or an Error, never a crash, hang or out-of-bounds read.
TEST_F(Checkpoint, CorruptedPicklesAndArchivesFailCleanly) {
  auto zip = ZipArchive::open(kDir + "tiny.ckpt");
  std::vector<ZipSpec> specs;
  size_t pkl_index = 0;
  for (const ZipEntry& e : zip->entries()) {
    ZipBytes b = zip->read(e);
    if (e.name == "tiny/data.pkl") pkl_index = specs.size();
    specs.push_back({e.name, std::string(reinterpret_cast<const char*>(b.data), b.size)});
  }
  const std::string pkl = specs[pkl_index].data;
  const std::string path = dir_ + "/m.ckpt";
  int opened = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    overwrite(path, bytes);
    try {
      auto f = open_pickle_checkpoint(path);
      for (const TensorView& v : f->tensors()) {
        if (v.nbytes) {
          EXPECT_GE(int(v.data[v.nbytes - 1]), 0);  // touches the last byte
        }
      }
      ++opened;
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (size_t i = 0; i < pkl.size(); ++i)
    for (int flip : {0x01, 0xff}) {
      specs[pkl_index].data = pkl;
      specs[pkl_index].data[i] = char(pkl[i] ^ flip);
      attempt(build_zip(specs, true).bytes);
    }
  for (size_t n = 0; n < pkl.size(); n += 7) {
    specs[pkl_index].data = pkl.substr(0, n);
    attempt(build_zip(specs, true).bytes);
  }
  std::ifstream f(kDir + "tiny.ckpt", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(f)), {});
  for (size_t i = 0; i < raw.size(); i += 3) {
    std::string b = raw;
    b[i] = char(b[i] ^ 0x21);
    attempt(b);
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(opened, 0);
}

}  // namespace
}  // namespace sdpal
