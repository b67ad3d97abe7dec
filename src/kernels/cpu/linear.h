// Fully connected layer y = x W^T + b (+ residual), on row-major [M, K] activations.
// Weights are converted and reordered once, at construction, into the layout the GEMM wants.
#pragma once
#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal::cpu {

class Linear {
 public:
  // weight: [N, K] (or [N, K, 1, 1], as 1x1 convs store it); bias: [N] or nullptr. Any float dtype
  // (F32, F16, BF16, F64): converted to F32 here, so the views need not outlive the constructor.
  Linear(const TensorView& weight, const TensorView* bias);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  int64_t in_features() const;
  int64_t out_features() const;
  // x: [M, K] contiguous; y: [M, N]; residual: [M, N] or nullptr (added after bias). y may alias
  // residual (fused as an in-place sum) but not x. A separate residual is fused as a binary add.
  // One oneDNN primitive is built and cached per distinct M (and residual mode) on first use.
  // Thread safety: run() may be called from several threads at once (the per-M primitive cache is
  // locked; each thread has its own scratchpad), though each call already uses all OpenMP threads.
  void run(const float* x, int64_t m, float* y, const float* residual = nullptr) const;
  // Convenience: x [..., K] -> new [..., N]; residual, when given, has the output's shape.
  Tensor run(const Tensor& x, const Tensor* residual = nullptr) const;

  // Number of distinct oneDNN primitives built so far (one per M and residual mode); for tests.
  int64_t cached_plans() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdpal::cpu
