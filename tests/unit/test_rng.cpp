// src/rng against goldens from tests/reference/make_rng_goldens.py (torch 2.5.1, numpy 1.26.4):
// every value must match bit for bit. The CUDA-compatible generator is checked against values drawn on
// an H100 (make_cuda_rng_goldens.py) within 1e-5: the GPU's float math is not reproduced bitwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "rng/cephes_avx.h"
#include "rng/cuda_philox.h"
#include "rng/mt19937.h"
#include "rng/numpy_random.h"
#include "rng/torch_generator.h"

using namespace sdpal;
using nlohmann::json;

namespace {

std::string golden_path(const std::string& name) { return std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/rng/" + name; }

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Just enough safetensors for the goldens (kept local so this test depends on src/rng only).
struct Golden {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::map<std::string, Golden> load_safetensors(const std::string& path) {
  const std::string file = read_all(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);  // little-endian host assumed, as by the goldens
  const json header = json::parse(file.substr(8, header_len));
  const size_t base = 8 + header_len;
  std::map<std::string, Golden> out;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
    out[name] = {info["dtype"], info["shape"].get<std::vector<int64_t>>(), file.substr(base + begin, end - begin)};
  }
  return out;
}

template <typename T>
std::vector<T> values(const Golden& g) {
  std::vector<T> v(g.bytes.size() / sizeof(T));
  std::memcpy(v.data(), g.bytes.data(), g.bytes.size());
  return v;
}

template <typename T>
std::string show(T v) {
  std::ostringstream os;
  os << std::setprecision(std::numeric_limits<T>::max_digits10) << v;
  return os.str();
}

// Bitwise comparison; on failure reports how many differ and the first few.
template <typename T>
::testing::AssertionResult bit_equal(const T* got, const std::vector<T>& want) {
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      if (++bad <= 3) first += " [" + std::to_string(i) + "] got " + show(got[i]) + " want " + show(want[i]);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << want.size() << " values differ:" << first;
}

struct GoldenSet {
  json doc;
  std::map<std::string, Golden> tensors;
};

const GoldenSet& torch_goldens() {
  static const GoldenSet set{json::parse(read_all(golden_path("torch_randn.json"))),
                             load_safetensors(golden_path("torch_randn.safetensors"))};
  return set;
}

const GoldenSet& numpy_goldens() {
  static const GoldenSet set{json::parse(read_all(golden_path("numpy_randn.json"))),
                             load_safetensors(golden_path("numpy_randn.safetensors"))};
  return set;
}

const GoldenSet& cuda_goldens() {
  static const GoldenSet set{json::parse(read_all(golden_path("cuda_randn.json"))),
                             load_safetensors(golden_path("cuda_randn.safetensors"))};
  return set;
}

void check_torch_path(const std::string& path_name, RandnPath path) {
  const GoldenSet& g = torch_goldens();
  int cases = 0;
  for (const json& c : g.doc["cases"]) {
    if (c["path"] != path_name) continue;
    ++cases;
    const uint64_t seed = c["seed"].get<uint64_t>();
    TorchGenerator gen(seed);
    for (const json& d : c["draws"]) {
      if (d["reseed"].get<bool>()) gen.manual_seed(seed);
      const Shape shape = d["shape"].get<Shape>();
      const Golden& want = g.tensors.at(d["tensor"].get<std::string>());
      ASSERT_EQ(want.dtype, "F32");
      ASSERT_EQ(want.shape, shape);
      const Tensor got = gen.randn(shape, path);
      ASSERT_EQ(got.shape(), shape);
      EXPECT_TRUE(bit_equal(got.f32(), values<float>(want))) << c["name"] << " draw " << d["tensor"];
    }
  }
  EXPECT_GT(cases, 10);
}

}  // namespace

TEST(Mt19937, MatchesStdMt19937) {
  for (uint32_t seed : {0u, 1u, 5489u, 0xffffffffu}) {
    Mt19937 ours(seed);
    std::mt19937 ref(seed);
    for (int i = 0; i < 2000; ++i) ASSERT_EQ(ours(), ref()) << "seed " << seed << " draw " << i;
  }
}

TEST(TorchGenerator, Random64MatchesTorch) {
  const GoldenSet& g = torch_goldens();
  ASSERT_FALSE(g.doc["raw64"].empty());
  for (const json& r : g.doc["raw64"]) {
    const auto want = values<int64_t>(g.tensors.at(r["tensor"].get<std::string>()));
    ASSERT_EQ(want.size(), r["count"].get<size_t>());
    TorchGenerator a(r["seed"].get<uint64_t>()), b(r["seed"].get<uint64_t>());
    std::vector<int64_t> got(want.size());
    for (auto& v : got) v = int64_t(a.random64());
    EXPECT_TRUE(bit_equal(got.data(), want));
    // random64 is two random() draws, the first in the high half.
    for (size_t i = 0; i < want.size(); ++i) {
      const uint64_t hi = b.random(), lo = b.random();
      ASSERT_EQ((hi << 32) | lo, uint64_t(want[i])) << i;
    }
  }
}

TEST(TorchGenerator, SeedUsesLow32BitsAndKeepsFullSeed) {
  TorchGenerator big((uint64_t(1) << 32) + 5), small(5);
  EXPECT_EQ(big.initial_seed(), (uint64_t(1) << 32) + 5);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(big.random(), small.random());
  TorchGenerator neg(uint64_t(int64_t(-1))), ones(0xffffffffu);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(neg.random(), ones.random());
}

TEST(TorchGenerator, Avx2PathMatchesTorch) { check_torch_path("avx2", RandnPath::Avx2); }

TEST(TorchGenerator, ScalarPathMatchesTorch) {
  // Uses the C library's logf/sinf/cosf like torch does: exact where that libm is glibc's.
  check_torch_path("scalar", RandnPath::Scalar);
}

TEST(TorchGenerator, SmallDrawsIgnoreThePath) {
  TorchGenerator a(99), b(99);
  float x[15], y[15];
  a.randn(x, 15, RandnPath::Avx2);
  b.randn(y, 15, RandnPath::Scalar);
  EXPECT_EQ(std::memcmp(x, y, sizeof x), 0);
}

TEST(TorchGenerator, ReseedDropsCachedNormal) {
  TorchGenerator a(7), fresh(7);
  float x[3], y, z;
  a.randn(x, 3);  // leaves the sine half of the second pair cached
  a.manual_seed(7);
  a.randn(&y, 1);
  fresh.randn(&z, 1);
  EXPECT_EQ(std::memcmp(&y, &z, 4), 0);
}

TEST(TorchGenerator, EmptyAndInvalid) {
  TorchGenerator g(0), ref(0);
  g.randn(nullptr, 0);
  EXPECT_EQ(g.random(), ref.random());  // nothing drawn
  EXPECT_EQ(g.randn(Shape{2, 0, 3}).numel(), 0);
  EXPECT_THROW(g.randn(nullptr, -1), Error);
  EXPECT_THROW(g.randn(Shape{-1, 4}), Error);
}

TEST(CephesAvx, SpecialValues) {
  EXPECT_EQ(cephes_avx::log(1.0f), 0.0f);
  EXPECT_TRUE(std::isnan(cephes_avx::log(0.0f)));
  EXPECT_TRUE(std::isnan(cephes_avx::log(-1.0f)));
  float s, c;
  cephes_avx::sincos(0.0f, &s, &c);
  EXPECT_EQ(s, 0.0f);
  EXPECT_EQ(c, 1.0f);
  // Accuracy sanity: a few ulp of libm over the sampler's domain.
  for (float x = 1e-6f; x <= 1.0f; x *= 1.37f) EXPECT_NEAR(cephes_avx::log(x), std::log(x), 4e-7f * std::max(1.0f, std::fabs(std::log(x))));
  for (float x = 0.0f; x < 6.2832f; x += 0.01f) {
    cephes_avx::sincos(x, &s, &c);
    EXPECT_NEAR(s, std::sin(x), 3e-7f);
    EXPECT_NEAR(c, std::cos(x), 3e-7f);
  }
}

TEST(NumpyRandomState, MatchesNumpy) {
  const GoldenSet& g = numpy_goldens();
  int cases = 0;
  for (const json& c : g.doc["cases"]) {
    ++cases;
    NumpyRandomState rs(c["seed"].get<int64_t>());
    for (const json& d : c["draws"]) {
      const Shape shape = d["shape"].get<Shape>();
      const Golden& want = g.tensors.at(d["tensor"].get<std::string>());
      ASSERT_EQ(want.dtype, "F64");
      ASSERT_EQ(want.shape, shape);
      const auto ref = values<double>(want);
      std::vector<double> got(ref.size());
      rs.randn(got.data(), int64_t(got.size()));
      EXPECT_TRUE(bit_equal(got.data(), ref)) << c["name"] << " draw " << d["tensor"];
    }
  }
  EXPECT_GT(cases, 10);
}

TEST(NumpyRandomState, FloatIsRoundedDouble) {
  NumpyRandomState a(3), b(3);
  std::vector<double> d(37);
  a.randn(d.data(), 37);
  Tensor t = b.randn(Shape{37});
  for (int i = 0; i < 37; ++i) ASSERT_EQ(t.f32()[i], float(d[i]));
}

TEST(NumpyRandomState, SeedRange) {
  EXPECT_NO_THROW(NumpyRandomState(0xffffffffLL));
  EXPECT_THROW(NumpyRandomState(-1), Error);
  EXPECT_THROW(NumpyRandomState(int64_t(1) << 32), Error);
}

TEST(CudaPhiloxGenerator, MatchesTorchOnAGpu) {
  const GoldenSet& g = cuda_goldens();
  int cases = 0;
  double worst = 0;
  for (const json& c : g.doc["cases"]) {
    ++cases;
    CudaPhiloxGenerator gen(c["seed"].get<uint64_t>());
    for (const json& d : c["draws"]) {
      const Shape shape = d["shape"].get<Shape>();
      const Golden& want = g.tensors.at(d["tensor"].get<std::string>());
      ASSERT_EQ(want.dtype, "F32");
      ASSERT_EQ(want.shape, shape);
      const auto ref = values<float>(want);
      const Tensor got = gen.randn(shape);
      ASSERT_EQ(got.shape(), shape);
      for (size_t i = 0; i < ref.size(); ++i) {
        const double e = std::abs(double(got.f32()[i]) - ref[i]);
        worst = std::max(worst, e);
        ASSERT_LT(e, 1e-5) << c["name"] << " draw " << d["tensor"] << " [" << i << "] got " << got.f32()[i]
                           << " want " << ref[i];
      }
    }
  }
  EXPECT_EQ(cases, 27);  // 5 seeds x (5 shapes + two draws), 1x4x64x64 for 2 of them
  std::cout << "largest difference from torch.randn on the GPU: " << worst << "\n";
}

TEST(CudaPhiloxGenerator, ReseedRestartsAndDrawsAdvance) {
  CudaPhiloxGenerator a(7), b(7);
  const Tensor first = a.randn(Shape{5});
  const Tensor second = a.randn(Shape{5});
  EXPECT_EQ(a.offset(), 2u);
  EXPECT_NE(std::memcmp(first.f32(), second.f32(), 20), 0);
  a.manual_seed(7);
  const Tensor again = a.randn(Shape{5});
  EXPECT_EQ(std::memcmp(first.f32(), again.f32(), 20), 0);
  // A draw's prefix does not depend on its length (element i uses counter i).
  const Tensor longer = b.randn(Shape{9});
  EXPECT_EQ(std::memcmp(first.f32(), longer.f32(), 20), 0);
}
