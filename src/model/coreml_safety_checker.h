// Apple's SafetyChecker program (ml-stable-diffusion's torch2coreml.py, convert_safety_checker) for
// the native safety checker (model/safety_checker.h) and the MIL interpreter.
//
// The program takes clip_input [1, 3, 224, 224], images [1, H, W, 3] and adjustment [1], and returns
// filtered_images, has_nsfw_concepts and concept_scores. Its CLIP vision weights keep their module
// paths ("vision_model_vision_model_encoder_layers_0_..._to_fp16"); the rest was constant-folded by
// coremltools into anonymous constants: the class embedding (a concat operand), the position
// embedding (added right after), and the normalized concept / special-care embeddings with their
// negated thresholds (weight and bias of the two `linear` ops on the normalized image embedding, or
// a matmul followed by sub / add in other converter versions). These are found by following the
// graph: the special-care scores are the ones the `adjustment` input is added to, the concept
// scores the ones the `concept_scores` output comes from.
#pragma once
#include <memory>

#include "io/coreml/model_folder.h"
#include "io/tensor_file.h"
#include "model/coreml_weights.h"
#include "model/model_config.h"

namespace sdpal {

// Widths and layers from the named weights, heads from the attention reshape, image size from the
// clip_input input, activation from the graph (gelu op: GELU; else quick_gelu as x * sigmoid(1.702 x)).
// Throws Error(kModel) naming the program when a weight or input it needs is missing.
ClipVisionConfig safety_checker_config_from_coreml(const CoreMLWeightFile& w, const coreml::CoreMLModel& model);

// The folded constants as F32 tensors under the Core ML base names of the diffusers parameters
// (coreml_mangle: "vision_model_vision_model_embeddings_class_embedding", "..._position_embedding_weight",
// "concept_embeds", "concept_embeds_weights", "special_care_embeds", "special_care_embeds_weights"),
// so a WeightBinder over {named weights, these} binds the native SafetyChecker. Throws Error(kModel)
// naming the program and what was not found.
std::shared_ptr<TensorFile> safety_checker_folded_constants(const coreml::CoreMLModel& model, const ClipVisionConfig& cfg);

}  // namespace sdpal
