// Palettization of one weight: a dense tensor -> packed n-bit indices + a float16 look-up table,
// in exactly the form PalettizedView (core/palettized.h) describes, so decode_palettized and the
// kernels read it unchanged. The table comes from coremltools' k-means (quant/kmeans_1d.h):
//   1. the weight is rounded to float16 (Core ML palettizes the fp16 model; this also bounds the
//      distinct values to 65,536 whatever the tensor's size);
//   2. per tensor, or per group of G output channels (axis 0), the distinct values (-0 merged
//      with +0) and their counts are clustered with kmeans_1d into min(#distinct, 2^nbits)
//      clusters;
//   3. the table holds the centroids rounded to float16 (round to nearest even from double, as
//      numpy's astype does), ascending, zero-padded to 2^nbits entries; each element's index is
//      the cluster of its value; indices are packed LSB first, row-major (core/palettized.h).
// Table shapes: per tensor [2^nbits] (Core ML's iOS16 form); per group, Core ML's iOS18 form
// [O/G, 1, ..., 1, 2^nbits, 1] (rank + 2 axes), as coremltools' grouped_channelwise_compress
// makes it with channel_axis 0.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/palettized.h"
#include "io/tensor_file.h"

namespace sdpal {

struct PalettizeOptions {
  int nbits = 6;           // 1, 2, 3, 4, 6 or 8
  int64_t group_size = 0;  // output channels per table; 0 = one table for the whole tensor
};

// A palettized weight owning its bytes.
struct PalettizedTensor {
  std::string name;
  Shape shape;                    // the dense shape
  int nbits = 0;
  Shape lut_shape;                // [2^nbits] or [O/G, 1.., 2^nbits, 1]
  std::vector<uint8_t> indices;   // ceil(nbits * numel / 8) bytes
  std::vector<uint16_t> lut;      // float16 bits, row-major over lut_shape (little-endian in memory)
  // A view pointing into this object (which must outlive it and stay unmodified).
  PalettizedView view() const;
};

// Palettizes `dense` (F32, F16, BF16 or F64). Throws Error(kInvalidArgument) naming the tensor for
// a bad nbits or group size (O not a multiple of G), a non-float dtype, an empty tensor or
// values that are not finite in float16 (NaN, inf, |x| > 65504).
PalettizedTensor palettize(const TensorView& dense, const PalettizeOptions& opts);

// The converter's rule, Core ML's (palettize_weights' weight_threshold): a float tensor of rank >= 2
// with more than `threshold` elements, except embedding tables (token / position embeddings),
// which stay dense. `why`, when given, receives the reason a tensor is left dense.
constexpr int64_t kPalettizeThreshold = 2048;
bool palettize_eligible(const TensorView& v, std::string* why = nullptr, int64_t threshold = kPalettizeThreshold);

// LSB-first packing of n-bit values (each < 2^nbits), as core/palettized.h reads them.
std::vector<uint8_t> pack_indices(const uint8_t* values, int64_t count, int nbits);

// float64 -> float16 bits, round to nearest even (no double rounding through float32).
uint16_t f64_to_f16(double d);

// Signal-to-noise ratio in dB of an approximation: 10*log10(sum ref^2 / sum (ref - approx)^2);
// +inf when they are equal.
double snr_db(const float* ref, const float* approx, int64_t n);

}  // namespace sdpal
