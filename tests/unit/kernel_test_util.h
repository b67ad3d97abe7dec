// Helpers shared by the kernel tests: seeded random data, the error metric every numerical kernel
// test uses, and a minimal safetensors reader for the torch goldens.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal::testing {

inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// max |actual - expected| / max |expected|: the error metric for every kernel test (tolerances are
// stated relative to the output's largest magnitude, so they don't blow up near zeros).
inline double rel_err(const float* actual, const float* expected, size_t n) {
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(actual[i]) != std::isnan(expected[i])) return INFINITY;
    max_diff = std::max(max_diff, std::fabs(double(actual[i]) - double(expected[i])));
    max_ref = std::max(max_ref, std::fabs(double(expected[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}
inline double rel_err(const std::vector<float>& a, const std::vector<float>& e) {
  EXPECT_EQ(a.size(), e.size());
  return rel_err(a.data(), e.data(), std::min(a.size(), e.size()));
}

// A float view of a vector (valid while the vector lives).
inline TensorView view(const std::vector<float>& v, const Shape& shape, const std::string& name = "t") {
  TensorView t;
  t.name = name;
  t.dtype = DType::F32;
  t.shape = shape;
  t.data = reinterpret_cast<const uint8_t*>(v.data());
  t.nbytes = v.size() * 4;
  return t;
}

// Goldens written by tests/reference/*.py with safetensors (F32 tensors only).
class Goldens {
 public:
  explicit Goldens(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    uint64_t header_len = 0;
    f.read(reinterpret_cast<char*>(&header_len), 8);
    std::string header(header_len, '\0');
    f.read(header.data(), std::streamsize(header_len));
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto j = nlohmann::json::parse(header);
    for (auto& [name, info] : j.items()) {
      if (name == "__metadata__") continue;
      if (info["dtype"] != "F32") throw std::runtime_error(name + " is not F32");
      size_t b = info["data_offsets"][0], e = info["data_offsets"][1];
      if (e > bytes.size() || b > e) throw std::runtime_error(name + ": bad offsets");
      Entry en;
      en.shape = info["shape"].get<Shape>();
      en.data.resize((e - b) / 4);
      std::memcpy(en.data.data(), bytes.data() + b, e - b);
      tensors_[name] = std::move(en);
    }
  }
  const std::vector<float>& data(const std::string& name) const { return at(name).data; }
  const Shape& shape(const std::string& name) const { return at(name).shape; }

 private:
  struct Entry {
    Shape shape;
    std::vector<float> data;
  };
  const Entry& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw std::runtime_error("golden tensor " + name + " missing");
    return it->second;
  }
  std::map<std::string, Entry> tensors_;
};

}  // namespace sdpal::testing
