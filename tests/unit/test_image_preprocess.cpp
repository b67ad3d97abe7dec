// CLIPImageProcessor reproduction: goldens from tests/reference/make_io_goldens.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/image_preprocess.h"
#include "io/pil_resize.h"
#include "io/safetensors.h"

namespace sdpal {
namespace {

const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/io/";

// The deterministic test images, identical to the Python script's.
std::vector<uint8_t> hash_u8(int w, int h) {
  std::vector<uint8_t> img(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        uint32_t v = (uint32_t(x) * 73856093u) ^ (uint32_t(y) * 19349663u) ^ (uint32_t(c) * 83492791u);
        v ^= v >> 13;
        v *= 0x5BD1E995u;
        v ^= v >> 15;
        img[(size_t(y) * w + x) * 3 + c] = uint8_t(v & 255);
      }
  return img;
}

std::vector<uint8_t> gradient_u8(int w, int h) {
  std::vector<uint8_t> img(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img[(size_t(y) * w + x) * 3];
      p[0] = uint8_t(x * 255 / std::max(w - 1, 1));
      p[1] = uint8_t(y * 255 / std::max(h - 1, 1));
      p[2] = uint8_t((x + y) * 255 / std::max(w + h - 2, 1));
    }
  return img;
}

std::vector<uint8_t> make_image(const std::string& pattern, int w, int h) {
  if (pattern == "hash") return hash_u8(w, h);
  std::vector<uint8_t> g = gradient_u8(w, h);
  if (pattern == "gradient") return g;
  std::vector<uint8_t> r = hash_u8(w, h);
  for (size_t i = 0; i < g.size(); ++i) g[i] = uint8_t(std::min(255, g[i] + (r[i] & 31)));
  return g;
}

nlohmann::json load_cases() {
  std::ifstream f(kDir + "preprocess.json");
  EXPECT_TRUE(f.good());
  return nlohmann::json::parse(f);
}

TEST(ImagePreprocess, LookupTableMatchesRescaleAndNormalize) {
  auto golden = open_safetensors(kDir + "preprocess.safetensors");
  const TensorView* lut = golden->find("lut");
  ASSERT_NE(lut, nullptr);
  ASSERT_EQ(lut->shape, (Shape{3, 256}));
  Tensor expect = to_f32(*lut);

  PreprocessConfig cfg = parse_preprocessor_config(load_cases()["lut_config"]);
  std::vector<uint8_t> ramp(256 * 3);
  for (int v = 0; v < 256; ++v) ramp[v * 3] = ramp[v * 3 + 1] = ramp[v * 3 + 2] = uint8_t(v);
  Tensor out = clip_preprocess(ramp.data(), 16, 16, cfg);
  ASSERT_EQ(out.shape(), (Shape{1, 16, 16, 3}));
  for (int v = 0; v < 256; ++v)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(out.f32()[v * 3 + c], expect.f32()[c * 256 + v]) << "value " << v << " channel " << c;
}

TEST(ImagePreprocess, MatchesCLIPImageProcessor) {
  auto golden = open_safetensors(kDir + "preprocess.safetensors");
  Tensor lut = to_f32(*golden->find("lut"));
  nlohmann::json cases = load_cases()["cases"];
  ASSERT_GE(cases.size(), 5u);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const TensorView* crop = golden->find(name);
    ASSERT_NE(crop, nullptr);
    ASSERT_EQ(crop->dtype, DType::U8);
    const int w = c["width"], h = c["height"];
    std::vector<uint8_t> img = make_image(c["pattern"], w, h);
    Tensor out = clip_preprocess(img.data(), w, h, parse_preprocessor_config(c["config"]));
    ASSERT_EQ(out.shape(), (Shape{1, crop->shape[0], crop->shape[1], 3}));
    // Reference pixel values are lut[channel][uint8 after PIL resize + crop]; expected exact.
    double max_err = 0;
    int64_t mismatched = 0;
    for (int64_t i = 0; i < crop->numel(); ++i) {
      const float ref = lut.f32()[(i % 3) * 256 + crop->data[i]];
      const double err = std::fabs(double(out.f32()[i]) - ref);
      max_err = std::max(max_err, err);
      mismatched += err != 0;
    }
    EXPECT_LE(max_err, 1e-6);
    EXPECT_EQ(mismatched, 0);
  }
}

TEST(ImagePreprocess, ParsesConfigForms) {
  PreprocessConfig a = parse_preprocessor_config(nlohmann::json::parse(R"({"size": 224, "crop_size": 224})"));
  EXPECT_EQ(a.shortest_edge, 224);
  EXPECT_EQ(a.crop_height, 224);
  EXPECT_EQ(a.crop_width, 224);
  EXPECT_EQ(a.resample, 3);
  EXPECT_DOUBLE_EQ(a.rescale_factor, 1.0 / 255.0);
  PreprocessConfig b = parse_preprocessor_config(nlohmann::json::parse(
      R"({"size": {"shortest_edge": 256}, "crop_size": {"height": 200, "width": 100}, "resample": 2,
          "do_normalize": false, "image_mean": 0.5, "rescale_factor": 0.5})"));
  EXPECT_EQ(b.shortest_edge, 256);
  EXPECT_EQ(b.crop_height, 200);
  EXPECT_EQ(b.crop_width, 100);
  EXPECT_EQ(b.resample, 2);
  EXPECT_FALSE(b.do_normalize);
  EXPECT_EQ(b.image_mean[2], 0.5);
  EXPECT_EQ(b.rescale_factor, 0.5);
  PreprocessConfig c = parse_preprocessor_config(nlohmann::json::parse(R"({"size": {"height": 30, "width": 40}})"));
  EXPECT_EQ(c.shortest_edge, 0);
  EXPECT_EQ(c.resize_height, 30);
  EXPECT_EQ(c.resize_width, 40);
  std::vector<uint8_t> img = hash_u8(50, 60);
  EXPECT_EQ(clip_preprocess(img.data(), 50, 60, c).shape(), (Shape{1, 224, 224, 3}));
  c.do_center_crop = false;
  EXPECT_EQ(clip_preprocess(img.data(), 50, 60, c).shape(), (Shape{1, 30, 40, 3}));
}

TEST(ImagePreprocess, RejectsBadConfig) {
  auto code = [](const char* text) {
    try {
      parse_preprocessor_config(nlohmann::json::parse(text));
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code(R"([1, 2])"), ErrorCode::kFormat);
  EXPECT_EQ(code(R"({"size": -3})"), ErrorCode::kFormat);
  EXPECT_EQ(code(R"({"size": {"longest_edge": 3}})"), ErrorCode::kFormat);
  EXPECT_EQ(code(R"({"crop_size": "224"})"), ErrorCode::kFormat);
  EXPECT_EQ(code(R"({"image_std": [1, 2]})"), ErrorCode::kFormat);
  EXPECT_EQ(code(R"({"do_resize": 1})"), ErrorCode::kFormat);
  EXPECT_EQ(code(R"({"resample": 1})"), ErrorCode::kUnsupported);
  PreprocessConfig cfg;
  EXPECT_THROW(clip_preprocess(nullptr, 10, 10, cfg), Error);
  std::vector<uint8_t> img(1000 * 3);
  EXPECT_THROW(clip_preprocess(img.data(), 0, 1, cfg), Error);
  EXPECT_THROW(clip_preprocess(img.data(), 1, 1000, cfg), Error);  // would resize to 224 x 224000
}

TEST(PilResize, SameSizeIsACopyAndConstantStaysConstant) {
  std::vector<uint8_t> img = hash_u8(7, 5);
  EXPECT_EQ(pil_resize_rgb8(img.data(), 7, 5, 7, 5, PilFilter::kBicubic), img);
  std::vector<uint8_t> flat(40 * 30 * 3, 77);
  for (auto f : {PilFilter::kBicubic, PilFilter::kBilinear})
    for (auto [w, h] : {std::pair{13, 9}, std::pair{40, 71}, std::pair{97, 30}}) {
      std::vector<uint8_t> out = pil_resize_rgb8(flat.data(), 40, 30, w, h, f);
      ASSERT_EQ(out.size(), size_t(w) * h * 3);
      for (uint8_t v : out) ASSERT_EQ(v, 77);
    }
  EXPECT_THROW(pil_resize_rgb8(img.data(), 7, 5, 0, 5, PilFilter::kBicubic), Error);
}

}  // namespace
}  // namespace sdpal
