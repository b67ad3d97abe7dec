// PNG writing (atomic, text chunks) and reading of every color type Pillow writes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace sdpal {
namespace {

using sdpal::testing::overwrite;
using sdpal::testing::read_all;

namespace fs = std::filesystem;
const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/io/";



std::vector<uint8_t> pattern(int w, int h) {
  std::vector<uint8_t> px(size_t(w) * h * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 37 + (i >> 5));
  return px;
}

class Png : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdpal_png_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t files_in_dir() const { return size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }

  ErrorCode write_error(const std::string& path, const uint8_t* px, int w, int h, const TextChunks& text = {}) {
    try {
      write_png(path, px, w, h, text);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kIo) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      }
      return e.code();
    }
    return ErrorCode::kInternal;
  }
  ErrorCode read_error(const std::string& path) {
    try {
      read_png(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      return e.code();
    }
    return ErrorCode::kInternal;
  }
  std::string dir_;
};

TEST_F(Png, RoundTripsPixelsAndText) {
  const int w = 37, h = 23;
  std::vector<uint8_t> px = pattern(w, h);
  const TextChunks text = {{"parameters", "a cat, Steps: 20, Seed: 1\nNegative prompt: dog"},
                           {"latin", "caf\xc3\xa9"},                 // Latin-1 representable: tEXt
                           {"unicode", "\xe7\x8c\xab \xf0\x9f\x90\xb1"},  // needs iTXt
                           {"empty", ""}};
  const std::string path = dir_ + "/out.png";
  write_png(path, px.data(), w, h, text);
  Image img = read_png(path);
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.height, h);
  EXPECT_EQ(img.rgb, px);
  EXPECT_EQ(img.text, text);
  EXPECT_EQ(files_in_dir(), 1u);
  // The Latin-1 value is stored as a tEXt chunk in Latin-1, the other as iTXt.
  const std::string bytes = read_all(path);
  EXPECT_NE(bytes.find(std::string("tEXtlatin\0caf\xe9", 14)), std::string::npos);
  EXPECT_NE(bytes.find("iTXtunicode"), std::string::npos);
}

TEST_F(Png, ReadsEveryColorTypeLikePillow) {
  auto expected = open_safetensors(kDir + "png_expected.safetensors");
  for (const char* name : {"gray", "gray1", "gray16", "la", "rgba", "palette", "text"}) {
    SCOPED_TRACE(name);
    Image img = read_png(kDir + "png_" + name + ".png");
    const TensorView* e = expected->find(name);
    ASSERT_NE(e, nullptr);
    ASSERT_EQ(e->shape, (Shape{img.height, img.width, 3}));
    EXPECT_EQ(img.rgb, std::vector<uint8_t>(e->data, e->data + e->nbytes));
  }
}

TEST_F(Png, ReadsTextChunksWrittenByPillow) {
  std::ifstream f(kDir + "png_text.json");
  TextChunks want = nlohmann::json::parse(f).get<TextChunks>();
  ASSERT_EQ(want.size(), 4u);
  EXPECT_EQ(read_png(kDir + "png_text.png").text, want);
}

TEST_F(Png, OverwritesExistingFileAtomically) {
  std::vector<uint8_t> a = pattern(4, 4), b(4 * 4 * 3, 9);
  const std::string path = dir_ + "/x.png";
  write_png(path, a.data(), 4, 4);
  write_png(path, b.data(), 4, 4);
  EXPECT_EQ(read_png(path).rgb, b);
  EXPECT_EQ(files_in_dir(), 1u);
}

TEST_F(Png, UnwritablePathsFailCleanlyAndLeaveNothing) {
  std::vector<uint8_t> px = pattern(4, 4);
  EXPECT_EQ(write_error(dir_ + "/missing/dir/x.png", px.data(), 4, 4), ErrorCode::kIo);
  fs::create_directory(dir_ + "/sub");
  EXPECT_EQ(write_error(dir_ + "/sub", px.data(), 4, 4), ErrorCode::kIo);  // rename onto a directory
  std::ofstream(dir_ + "/plain") << "x";
  EXPECT_EQ(write_error(dir_ + "/plain/x.png", px.data(), 4, 4), ErrorCode::kIo);
  if (geteuid() != 0) {  // root ignores directory permissions
    fs::create_directory(dir_ + "/ro");
    chmod((dir_ + "/ro").c_str(), 0500);
    EXPECT_EQ(write_error(dir_ + "/ro/x.png", px.data(), 4, 4), ErrorCode::kIo);
    EXPECT_TRUE(fs::is_empty(dir_ + "/ro"));
    chmod((dir_ + "/ro").c_str(), 0700);
  }
  EXPECT_TRUE(fs::is_empty(dir_ + "/sub"));
  EXPECT_EQ(files_in_dir(), fs::exists(dir_ + "/ro") ? 3u : 2u);  // sub, plain (, ro)
}

TEST_F(Png, RejectsBadArgumentsWithoutCreatingFiles) {
  std::vector<uint8_t> px = pattern(4, 4);
  const std::string path = dir_ + "/x.png";
  EXPECT_EQ(write_error(path, nullptr, 4, 4), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 0, 4), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, -1), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, 4, {{"", "x"}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, 4, {{std::string(80, 'k'), "x"}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, 4, {{" lead", "x"}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, 4, {{"k\xc3\xa9", "x"}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, 4, {{"k", "bad \xff utf8"}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(write_error(path, px.data(), 4, 4, {{"k", std::string("nul\0", 4)}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(files_in_dir(), 0u);
}

TEST_F(Png, RejectsCorruptFiles) {
  EXPECT_EQ(read_error(dir_ + "/missing.png"), ErrorCode::kIo);
  std::ofstream(dir_ + "/text.png") << "this is not a png";
  EXPECT_EQ(read_error(dir_ + "/text.png"), ErrorCode::kFormat);
  std::ofstream(dir_ + "/empty.png");
  EXPECT_EQ(read_error(dir_ + "/empty.png"), ErrorCode::kFormat);

  std::vector<uint8_t> px = pattern(16, 16);
  write_png(dir_ + "/good.png", px.data(), 16, 16);
  const std::string good = read_all(dir_ + "/good.png");
  std::ofstream(dir_ + "/truncated.png", std::ios::binary) << good.substr(0, good.size() / 2);
  EXPECT_EQ(read_error(dir_ + "/truncated.png"), ErrorCode::kFormat);
  std::string bad_crc = good;
  bad_crc[29] ^= 0x55;  // inside the IHDR CRC
  std::ofstream(dir_ + "/crc.png", std::ios::binary) << bad_crc;
  EXPECT_EQ(read_error(dir_ + "/crc.png"), ErrorCode::kFormat);
  std::string huge = good;
  huge[16] = 0x7f;  // width 2^31-ish: rejected before any allocation
  std::ofstream(dir_ + "/huge.png", std::ios::binary) << huge;
  EXPECT_EQ(read_error(dir_ + "/huge.png"), ErrorCode::kFormat);
}

TEST_F(Png, CorruptedFilesFailCleanly) {
  std::vector<uint8_t> px = pattern(9, 7);
  write_png(dir_ + "/src.png", px.data(), 9, 7, {{"parameters", "x"}});
  for (const std::string& src : {kDir + "png_text.png", kDir + "png_palette.png", dir_ + "/src.png"}) {
    const std::string good = read_all(src);
    int read = 0, rejected = 0;
    auto attempt = [&](const std::string& bytes) {
      overwrite(dir_ + "/m.png", bytes);
      try {
        Image img = read_png(dir_ + "/m.png");
        EXPECT_EQ(img.rgb.size(), size_t(img.width) * img.height * 3);
        ++read;
      } catch (const Error&) {
        ++rejected;
      }
    };
    for (size_t i = 0; i < good.size(); ++i)
      for (int flip : {0x01, 0x80}) {
        std::string b = good;
        b[i] = char(b[i] ^ flip);
        attempt(b);
      }
    for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n));
    EXPECT_GT(rejected, 0) << src;
    EXPECT_GT(read, 0) << src;  // ancillary chunks with bad CRCs are skipped, as libpng does
  }
}

}  // namespace
}  // namespace sdpal
