#include "golden.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"

namespace sdpal::testing {

std::string repo_path(const std::string& relative) { return std::string(SDPAL_SOURCE_DIR) + "/" + relative; }

Golden::Golden(const std::string& relative_path) : file_(open_safetensors(repo_path(relative_path))) {}

bool Golden::has(const std::string& name) const { return file_->find(name) != nullptr; }

const TensorView& Golden::view(const std::string& name) const {
  const TensorView* v = file_->find(name);
  if (!v) throw Error(ErrorCode::kFormat, "golden " + file_->path() + " has no tensor " + name);
  return *v;
}

Tensor Golden::f32(const std::string& name) const { return to_f32(view(name)); }

std::vector<int64_t> Golden::ints(const std::string& name) const {
  const TensorView& v = view(name);
  std::vector<int64_t> out(static_cast<size_t>(v.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (v.dtype) {
      case DType::I64: { int64_t x; std::memcpy(&x, v.data + 8 * i, 8); out[i] = x; break; }
      case DType::I32: { int32_t x; std::memcpy(&x, v.data + 4 * i, 4); out[i] = x; break; }
      case DType::U8: case DType::BOOL: out[i] = v.data[i]; break;
      default: throw Error(ErrorCode::kFormat, "golden tensor " + name + " is not an integer tensor");
    }
  }
  return out;
}

std::vector<uint8_t> Golden::u8(const std::string& name) const {
  const TensorView& v = view(name);
  if (v.dtype != DType::U8) throw Error(ErrorCode::kFormat, "golden tensor " + name + " is not U8");
  return std::vector<uint8_t>(v.data, v.data + v.nbytes);
}

Diff compare(const float* got, const float* ref, int64_t n) {
  Diff d;
  for (int64_t i = 0; i < n; ++i) {
    double e = std::fabs(double(got[i]) - double(ref[i]));
    if (!(e <= d.max_abs)) {  // also catches NaN
      d.max_abs = std::isnan(e) ? INFINITY : e;
      d.worst = i;
    }
    d.ref_scale = std::max(d.ref_scale, std::fabs(double(ref[i])));
  }
  d.rel = d.ref_scale > 0 ? d.max_abs / d.ref_scale : d.max_abs;
  return d;
}

void expect_close(const Tensor& got, const Tensor& ref, double tol, const std::string& what) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(ref.shape())) << what;
  Diff d = compare(got.f32(), ref.f32(), got.numel());
  EXPECT_LE(d.rel, tol) << what << ": max abs error " << d.max_abs << " at " << d.worst << " (got "
                        << (d.worst >= 0 ? got.f32()[d.worst] : 0.f) << ", want "
                        << (d.worst >= 0 ? ref.f32()[d.worst] : 0.f) << "), reference scale " << d.ref_scale;
}

}  // namespace sdpal::testing
