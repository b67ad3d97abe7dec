// GroupNorm and LayerNorm parameters of a Core ML program, found by following its graph.
//
// Apple's converter leaves these constants without a module path: coremltools fuses GroupNorm's
// affine step into a `batch_norm` (gamma, beta, mean, variance, epsilon: add_N_gamma_0 ...), and
// Apple's LayerNormANE computes `(normalized + c1) * c2` with c1 = bias / weight, c2 = weight
// (var_N constants of shape [1, C, 1, 1]). A norm's identity is the layer that consumes it: walking
// back from each named conv / linear weight's input through shape-only ops (reshape, transpose,
// silu, cast, ...) reaches the norm that feeds it, and the consumer's module path names the norm
// (resnets.N.conv1 <- norm1, conv2 <- norm2, attentions.N.proj_in <- norm, conv_out <-
// conv_norm_out, transformer_blocks.N.attn1.to_q/k/v <- norm1, attn2.to_q <- norm2, ff.net.0.proj
// <- norm3, VAE attention query/key/value <- group_norm).
//
// The parameters come out as the native modules want them: weight = gamma / sqrt(variance + eps),
// bias = beta - mean * weight for a batch_norm; weight = c2, bias = c1 * c2 for LayerNormANE.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/coreml/mil_ast.h"

namespace sdpal::coreml {
class WeightFiles;
}

namespace sdpal {

struct CoreMLNorm {
  std::string base;      // Core ML base name of the module, e.g. "down_blocks_0_resnets_0_norm1"
  std::string kind;      // "group_norm" (batch_norm form), "layer_norm_ane", "affine", "layer_norm"
  Tensor weight, bias;   // F32 [C]
  int groups = 0;        // GroupNorm: number of groups, read from the graph's [B, G, C/G, ...] reshape
  float eps = 0.f;       // the normalization's epsilon as the graph adds it (0 if not found)
  std::vector<std::string> consumed;  // constants (variable names) this norm's parameters came from
};

// Every norm that feeds a named layer of `block`. Norms whose parameters already carry a module
// path (the text encoder's layer_norm ops) are not returned. Throws Error(kFormat) naming the ops if
// two consumers of one module name reach different norms, or a constant has an unexpected shape.
std::vector<CoreMLNorm> find_coreml_norms(const coreml::MilBlock& block, const coreml::WeightFiles* files,
                                          const std::string& source);

}  // namespace sdpal
