// Runnable stand-ins for Apple's real Core ML programs, whose weights are not available here:
// a synthetic weight.bin with plausible values (so a forward pass stays in fp16's range, as with
// real weights), and whole SD resource folders built from the shared fixtures' model.mil files.
#pragma once
#include <string>
#include <vector>

#include "io/coreml/mil_ast.h"

namespace sdpal::testing {

// Writes model_dir/weights/weight.bin for `p`: seeded values uniform in [-1/8, 1/8), palettized
// weight tables scaled to a standard deviation of 0.3 / sqrt(fan-in) (16 times that for attention
// queries and keys, so attention weighs tokens unevenly), batch_norm variances set to 1.
void write_plausible_weights(const coreml::MilProgram& p, const std::string& model_dir, uint64_t seed = 1234);

// A resource folder at `out_dir` as Apple's Swift pipeline expects it: for each name in `models`
// (e.g. "TextEncoder", "Unet", "VAEDecoder") NAME.mlmodelc with the model.mil (and metadata.json)
// of `compiled_dir`/NAME.mlmodelc and plausible synthetic weights, plus vocab.json and merges.txt.
void make_sd_resources(const std::string& compiled_dir, const std::string& out_dir,
                       const std::vector<std::string>& models, uint64_t seed = 1234);

}  // namespace sdpal::testing
