// A Stable Diffusion model from Apple's Core ML resources (folder, zip archive or Python
// `packages/`; io/coreml/model_folder.h finds the parts), as the pipeline's StableDiffusionModel.
//
// Executor::kNative binds the programs' constants to the native modules (palettized weights stay
// packed; norms found through the graph; configs read off the programs), Executor::kMil runs the
// programs themselves with the MIL interpreter. Apple's conventions: the tokenizer from vocab.json
// and merges.txt with Apple's (SD v1) special tokens, the scheduler settings of Apple's pipeline
// (SD's scaled-linear betas), numpy noise by default. Apple's SafetyChecker program runs as the
// native safety checker (model/coreml_safety_checker.h) or, with kMil, in the interpreter.
#pragma once
#include <memory>
#include <string>

#include "model/diffusers_folder.h"

namespace sdpal {

// True if `path` is a zip archive or holds Core ML models (.mlmodelc / .mlpackage) at its root or
// one or two folders down, i.e. load_model() should treat it as Core ML resources.
bool looks_like_coreml_resources(const std::string& path);

std::unique_ptr<StableDiffusionModel> load_coreml_resources(const std::string& path, const LoadOptions& opts);

}  // namespace sdpal
