// Helpers for comparing against the committed reference goldens (tests/goldens/*).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal::testing {

std::string repo_path(const std::string& relative);

class Golden {
 public:
  explicit Golden(const std::string& relative_path);
  bool has(const std::string& name) const;
  const TensorView& view(const std::string& name) const;
  Tensor f32(const std::string& name) const;             // any float dtype -> F32, same shape
  std::vector<int64_t> ints(const std::string& name) const;  // I64/I32/U8 -> int64
  std::vector<uint8_t> u8(const std::string& name) const;

 private:
  std::unique_ptr<TensorFile> file_;
};

struct Diff {
  double max_abs = 0, ref_scale = 0, rel = 0;  // rel = max_abs / max(|ref|)
  int64_t worst = -1;
};
Diff compare(const float* got, const float* ref, int64_t n);
// Checks shapes and that the max error relative to the reference's max magnitude is <= tol.
void expect_close(const Tensor& got, const Tensor& ref, double tol, const std::string& what);


}  // namespace sdpal::testing
