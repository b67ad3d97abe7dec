// Fully connected layer y = x W^T + b (+ residual), on row-major [M, K] activations.
// Weights are converted and reordered once, at construction, into the layout the GEMM wants.
#pragma once
#include <cstdint>
#include <memory>

#include "io/tensor_file.h"

namespace sdpal::cpu {

class Linear {
 public:
  // weight: [N, K] (or [N, K, 1, 1], as 1x1 convs store it); bias: [N] or nullptr. Any float dtype.
  Linear(const TensorView& weight, const TensorView* bias);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  int64_t in_features() const;
  int64_t out_features() const;
  // x: [M, K] contiguous; y: [M, N]; residual: [M, N] or nullptr (added after bias). y may alias residual.
  void run(const float* x, int64_t m, float* y, const float* residual = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdpal::cpu
