// Palettized weights: decode against coremltools' own decompression (goldens), index packing fast
// paths against a bit-by-bit reference, and every validation error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/palettized.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace sdpal {
namespace {

using sdpal::testing::code_of;

const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/coreml/";


uint32_t ref_index(const std::vector<uint8_t>& p, int nbits, int64_t i) {
  uint32_t v = 0;
  for (int b = 0; b < nbits; ++b) {
    const uint64_t bit = uint64_t(i) * nbits + b;
    v |= uint32_t((p[bit / 8] >> (bit % 8)) & 1) << b;
  }
  return v;
}

TEST(Palettized, MatchesCoremltoolsOnEveryGoldenCase) {
  auto file = open_safetensors(kDir + "palettized_cases.safetensors");
  std::ifstream js(kDir + "palettized_cases.json");
  const auto cases = nlohmann::json::parse(js).at("cases");
  ASSERT_GE(cases.size(), 20u);
  std::mt19937 rng(7);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string p = "c" + std::to_string(i) + ".";
    const TensorView* idx = file->find(p + "indices");
    const TensorView* lut = file->find(p + "lut");
    const TensorView* exp = file->find(p + "expected");
    ASSERT_TRUE(idx && lut && exp) << p;
    PalettizedView v;
    v.name = p;
    v.shape = c.at("shape").get<Shape>();
    v.nbits = c.at("nbits").get<int>();
    v.indices = idx->data;
    v.indices_nbytes = idx->nbytes;
    v.lut_dtype = lut->dtype;
    v.lut = lut->data;
    v.lut_nbytes = lut->nbytes;
    v.lut_shape = c.at("lut_shape").get<Shape>();
    v.vector_axis = c.at("vector_axis").get<int>();
    ASSERT_EQ(v.numel(), exp->numel()) << p;
    std::vector<float> out(size_t(v.numel()));
    decode_palettized(v, 0, v.numel(), out.data());
    const Tensor expected = to_f32(*exp);  // an aligned copy: safetensors data need not be aligned
    const float* want = expected.f32();
    for (int64_t k = 0; k < v.numel(); ++k) ASSERT_EQ(out[size_t(k)], want[k]) << p << " element " << k;
    // Sub-ranges decode the same values (kernels decode a slice of rows at a time).
    for (int r = 0; r < 20; ++r) {
      const int64_t b = int64_t(rng() % uint32_t(v.numel()));
      const int64_t e = b + int64_t(rng() % uint32_t(v.numel() - b + 1));
      std::vector<float> part(size_t(e - b) + 1, -7.0f);
      decode_palettized(v, b, e, part.data());
      for (int64_t k = b; k < e; ++k) ASSERT_EQ(part[size_t(k - b)], want[k]) << p << " range " << b << ".." << e;
      ASSERT_EQ(part[size_t(e - b)], -7.0f) << "wrote past the range";
    }
  }
}

TEST(Palettized, UnpackMatchesBitReferenceForEveryWidthAndOffset) {
  std::mt19937 rng(1);
  for (int nbits : {1, 2, 3, 4, 6, 8}) {
    const int64_t n = 1000;
    std::vector<uint8_t> packed(size_t((n * nbits + 7) / 8));
    for (auto& b : packed) b = uint8_t(rng());
    for (int t = 0; t < 200; ++t) {
      const int64_t first = int64_t(rng() % n);
      const int64_t count = int64_t(rng() % uint32_t(n - first + 1));
      std::vector<uint8_t> out(size_t(count) + 1, 0xAB);
      unpack_indices(packed.data(), packed.size(), nbits, first, count, out.data());
      for (int64_t i = 0; i < count; ++i) ASSERT_EQ(out[size_t(i)], ref_index(packed, nbits, first + i)) << nbits << " " << first + i;
      ASSERT_EQ(out[size_t(count)], 0xAB);
    }
  }
}

// Element count, or 1 for shapes too large (or negative) to allocate: those views must fail validation.
int64_t small_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > (int64_t(1) << 32)) return 1;
  return n;
}

struct Fixture {
  std::vector<uint8_t> idx;
  std::vector<uint16_t> lut;
  PalettizedView v;
  Fixture(int nbits, Shape shape, Shape lut_shape) {
    v.name = "w";
    v.nbits = nbits;
    v.shape = std::move(shape);
    v.lut_shape = std::move(lut_shape);
    idx.assign(size_t((small_numel(v.index_shape()) * nbits + 7) / 8), 0x5A);
    lut.assign(size_t(small_numel(v.lut_shape)), f32_to_f16(1.5f));
    v.indices = idx.data();
    v.indices_nbytes = idx.size();
    v.lut = reinterpret_cast<const uint8_t*>(lut.data());
    v.lut_nbytes = lut.size() * 2;
  }
};

TEST(Palettized, RejectsIndexBytesNotMatchingTheShape) {
  for (int delta : {-1, 1}) {
    Fixture f(6, {10, 7}, {64});
    f.v.indices_nbytes += size_t(delta);  // 70 * 6 bits = 52.5 -> 53 bytes expected
    std::string msg;
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("index bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not matching the shape [10, 7]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected 53"), std::string::npos) << msg;
    float out[1];
    EXPECT_EQ(code_of([&] { decode_palettized(f.v, 0, 1, out); }), ErrorCode::kFormat);
  }
}

TEST(Palettized, RejectsInconsistentViews) {
  std::string msg;
  {
    Fixture f(5, {4}, {32});
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("5 bits"), std::string::npos) << msg;
  }
  {
    Fixture f(4, {4, 4}, {16});
    f.v.lut_shape = {8};  // table size is not 2^nbits
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }, &msg), ErrorCode::kFormat);
  }
  {
    Fixture f(4, {4, 4}, {16});
    f.v.lut_nbytes -= 2;  // table bytes do not match its shape
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("table of 30 bytes"), std::string::npos) << msg;
  }
  {
    Fixture f(2, {6, 4}, {4, 1, 4, 1});  // 6 rows cannot be cut into 4 groups
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("not divisible"), std::string::npos) << msg;
  }
  {
    Fixture f(2, {6, 4}, {1, 1, 4, 2});  // vector entries without a vector axis
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }, &msg), ErrorCode::kFormat);
    EXPECT_NE(msg.find("vector axis"), std::string::npos) << msg;
  }
  {
    Fixture f(2, {6, 4}, {1, 4, 1});  // table rank neither 1 nor rank + 2
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }), ErrorCode::kFormat);
  }
  {
    Fixture f(2, {-1, 4}, {4});
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }), ErrorCode::kFormat);
  }
  {
    Fixture f(2, {int64_t(1) << 40, int64_t(1) << 30}, {4});  // element count overflow
    EXPECT_EQ(code_of([&] { validate_palettized(f.v); }), ErrorCode::kFormat);
  }
  {
    Fixture f(2, {3, 4}, {4});
    float out[12];
    EXPECT_EQ(code_of([&] { decode_palettized(f.v, 5, 13, out); }), ErrorCode::kInvalidArgument);
    EXPECT_EQ(code_of([&] { decode_palettized(f.v, -1, 2, out); }), ErrorCode::kInvalidArgument);
    decode_palettized(f.v, 4, 4, out);  // an empty range is fine
  }
}

TEST(Palettized, DecodesIntegerTables) {
  const uint8_t idx[1] = {0b11100100};  // 2-bit indices 0, 1, 2, 3
  const int8_t lut[4] = {-3, -1, 1, 127};
  PalettizedView v;
  v.shape = {4};
  v.nbits = 2;
  v.indices = idx;
  v.indices_nbytes = 1;
  v.lut_dtype = DType::I8;
  v.lut = reinterpret_cast<const uint8_t*>(lut);
  v.lut_nbytes = 4;
  v.lut_shape = {4};
  float out[4];
  decode_palettized(v, 0, 4, out);
  EXPECT_EQ(out[0], -3.0f);
  EXPECT_EQ(out[1], -1.0f);
  EXPECT_EQ(out[2], 1.0f);
  EXPECT_EQ(out[3], 127.0f);
}

// The SD UNet's largest palettized conv weight: [1280, 2560, 3, 3] at 6 bits (29.5 M elements).
TEST(Palettized, DecodeSpeed) {
  for (int nbits : {6, 4}) {
    Fixture f(nbits, {1280, 2560, 3, 3}, {int64_t(1) << nbits});
    std::mt19937 rng(3);
    for (auto& b : f.idx) b = uint8_t(rng());
    std::vector<float> out(size_t(f.v.numel()));
    decode_palettized(f.v, 0, f.v.numel(), out.data());  // warm up
    const auto t0 = std::chrono::steady_clock::now();
    decode_palettized(f.v, 0, f.v.numel(), out.data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gelem = double(f.v.numel()) / s / 1e9;
    std::printf("[ speed    ] %d-bit decode of %lld elements: %.1f ms, %.2f G elements/s (1 thread)\n", nbits,
                static_cast<long long>(f.v.numel()), s * 1e3, gelem);
    RecordProperty("decode_" + std::to_string(nbits) + "bit_gelem_per_s", std::to_string(gelem));
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(SDPAL_NO_SPEED_CHECKS)
    EXPECT_GT(gelem, 0.1);  // ~10x below an optimized build on one core; catches a per-element slow path
#endif
  }
}

}  // namespace
}  // namespace sdpal
