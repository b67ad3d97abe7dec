// Fully connected layer y = x W^T + b (+ residual), on row-major [M, K] activations.
// Weights are converted and reordered once, at construction, into the layout the GEMM wants.
#pragma once
#include <cstdint>
#include <memory>

#include "core/precision.h"
#include "core/tensor.h"
#include "io/tensor_file.h"

namespace sdpal::cpu {

// dst[i] = bf16(src[i]) (round to nearest even) for i < n, on all threads: the conversion
// Linear::run makes in BF16 precision, for callers that share one converted input (run_bf16).
void f32_to_bf16(const float* src, uint16_t* dst, int64_t n);

// Decodes a whole palettized weight (row-major over its dense shape) into out, on all threads: the
// per-call step Linear / Conv2d make for a palettized source before reordering (exposed for timing).
void decode_palettized_weight(const PalettizedView& v, float* out);

class Linear {
 public:
  // weight: [N, K] (or [N, K, 1, 1], as 1x1 convs store it); bias: [N] or nullptr. Any float dtype
  // (F32, F16, BF16, F64): converted here, so the views need not outlive the constructor.
  // A palettized weight (weight.palettized set) stays packed: its indices are re-packed once, at the
  // same bit width, in the order of the blocked layout oneDNN picked (palettized_decode.h), and each
  // run() decodes them with the LUT straight into per-thread scratch in that layout (AVX-512 VBMI
  // where present), so results equal the dense path on the decoded weights. Grouped LUTs and
  // layouts that cannot be re-packed decode to plain fp32 and reorder. weight_bytes() is then the
  // packed size (a little more where oneDNN pads). Without an owner the caller keeps the bytes alive.
  // precision F32: weights kept in fp32, fp32 math. BF16: weights kept in bf16 (half the memory),
  // x rounded to bf16 on the way in (a parallel conversion pass into per-thread scratch), fp32
  // accumulation, bias and residual added in fp32, y fp32; oneDNN runs it on AMX-BF16 (or
  // AVX512-BF16). BF16 on a CPU without native bf16 is a kUnsupported error.
  Linear(const TensorView& weight, const TensorView* bias, Precision precision = Precision::F32);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  int64_t in_features() const;
  int64_t out_features() const;
  Precision precision() const;
  // Bytes held by the prepared (reordered) weights, all layouts together.
  size_t weight_bytes() const;
  // x: [M, K] contiguous; y: [M, N]; residual: [M, N] or nullptr (added after bias). y may alias
  // residual (fused as an in-place sum) but not x. A separate residual is fused as a binary add.
  // One oneDNN primitive is built and cached per distinct M (and residual mode) on first use.
  // Thread safety: run() may be called from several threads at once (the per-M primitive cache is
  // locked; each thread has its own scratchpad), though each call already uses all OpenMP threads.
  void run(const float* x, int64_t m, float* y, const float* residual = nullptr) const;
  // BF16 precision only: x already in bf16 ([M, K] raw bf16 bits, e.g. converted once with
  // f32_to_bf16() and shared by the q/k/v projections), which skips the conversion pass run()
  // makes (~25% of a 8192x320x320 product). Same results as run() on the fp32 x it came from.
  void run_bf16(const uint16_t* x, int64_t m, float* y, const float* residual = nullptr) const;
  // Convenience: x [..., K] -> new [..., N]; residual, when given, has the output's shape.
  Tensor run(const Tensor& x, const Tensor* residual = nullptr) const;

  // Number of distinct oneDNN primitives built so far (one per M and residual mode); for tests.
  int64_t cached_plans() const;

 private:
  // src: [m, K] in the GEMM's input type (fp32, or bf16 in BF16 precision).
  void execute(const void* src, int64_t m, float* y, const float* residual) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdpal::cpu
