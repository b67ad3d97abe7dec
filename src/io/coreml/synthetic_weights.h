// Writes a valid weight.bin for a MIL program whose real weights are not available: a record at
// every offset the program references, with the data type and size its declared tensor type needs,
// and deterministic content. Lets the readers (and an interpreter) run on Apple's real graphs.
#pragma once
#include <cstdint>
#include <string>

#include "io/coreml/blob_refs.h"

namespace sdpal::coreml {

enum class SyntheticFill {
  kZeros,   // data left as zero bytes (a sparse file: fast, takes little disk)
  kRandom,  // seeded pseudo-random data: floats in [-0.125, 0.125), wide ints in [0, 8), random bits otherwise
};

struct SyntheticWeightsInfo {
  uint64_t file_size = 0;
  uint32_t blobs = 0;
};

// Writes `layout` to `out_path` (written to a temporary file, then renamed). The header's count is the
// number of blobs; each record is {0xDEADBEEF, dtype code, nbytes, offset + 64, padding bits}.
// Throws Error(kUnsupported) for a dtype a weight file cannot hold, Error(kIo) when writing fails.
SyntheticWeightsInfo write_synthetic_weight_bin(const BlobLayout& layout, const std::string& out_path,
                                                SyntheticFill fill = SyntheticFill::kZeros, uint64_t seed = 0);

struct MilProgram;

// A runnable stand-in for a program's real weights: seeded values uniform in [-1/8, 1/8) rescaled
// so a forward pass stays in fp16's range as with real weights: weights (dense, or palettized
// tables) to a standard deviation of 0.3 / sqrt(fan-in) (16 times that for attention queries and
// keys, so attention weighs tokens unevenly), batch_norm variances 1, and a text encoder's causal
// attention mask the real one (0 on and below the diagonal, -inf above). Writes the program's one
// weight file to `out_path`; Error(kFormat) if it references several.
SyntheticWeightsInfo write_plausible_weight_bin(const MilProgram& p, const std::string& out_path, uint64_t seed = 1234);

}  // namespace sdpal::coreml
