// Finding and opening Core ML models on disk or in zip archives:
// - a compiled model folder `X.mlmodelc`: model.mil (textual MIL), weights/weight.bin, metadata.json
//   (input/output names, shapes, dtypes);
// - a package `X.mlpackage`: Manifest.json -> Data/<root item path> (model.mlmodel, protobuf), with
//   weights/weight.bin next to it;
// - Stable Diffusion resource folders as Apple's Swift pipeline expects them (TextEncoder.mlmodelc,
//   Unet.mlmodelc or UnetChunk1/2, VAEDecoder, VAEEncoder, SafetyChecker, vocab.json, merges.txt) and
//   the Python `packages/` naming (Stable_Diffusion_version_<model>_<text_encoder|unet|...>.mlpackage),
//   directly, one or two folders down, or inside a zip archive of those.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/coreml/mil_ast.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/model_description.h"
#include "io/coreml/resource_tree.h"

namespace sdpal::coreml {

enum class ModelFormat { kCompiled, kPackage };

// Where one model's parts are, as paths in a ResourceTree.
struct ModelFiles {
  ModelFormat format = ModelFormat::kCompiled;
  std::string dir;         // the .mlmodelc / .mlpackage folder
  std::string program;     // dir/model.mil, or dir/Data/com.apple.CoreML/model.mlmodel
  std::string model_path;  // the folder "@model_path" in BLOBFILE paths stands for
  std::string metadata;    // dir/metadata.json if present (compiled models)
};

// Throws Error(kModel) naming the folder if it is not a model (no model.mil; no Manifest.json or
// model.mlmodel), Error(kFormat) for a malformed or unsafe Manifest.json.
ModelFiles locate_model(const ResourceTree& tree, const std::string& dir);

struct CoreMLModel {
  std::string location;  // for messages
  ModelFiles files;
  MilProgram program;    // parsed and validated
  ModelDescription description;
  std::shared_ptr<const ResourceTree> tree;
  std::shared_ptr<WeightFiles> weights;  // opens model_path/<relative> on first use
};

// Reads the program and description; weight files are opened lazily through `weights`.
CoreMLModel load_model(std::shared_ptr<const ResourceTree> tree, const ModelFiles& files);
// A .mlmodelc or .mlpackage folder, or a zip archive whose root is one.
CoreMLModel load_model(const std::string& path);

// metadata.json of a compiled model (an array holding one object with inputSchema/outputSchema).
// Throws Error(kFormat) naming `source` when it is not valid JSON of that form.
ModelDescription parse_metadata_json(const uint8_t* data, size_t size, const std::string& source);

// A Stable Diffusion model as Core ML resources.
struct SDCoreMLResources {
  std::shared_ptr<const ResourceTree> tree;
  std::string base;    // folder in the tree holding the models ("" for the root)
  bool python_packages = false;  // Stable_Diffusion_version_*.mlpackage naming
  std::optional<ModelFiles> text_encoder, text_encoder_2, unet, vae_decoder, vae_encoder, safety_checker;
  std::vector<ModelFiles> unet_chunks;  // UnetChunk1, UnetChunk2; Apple's pipeline prefers these when both exist
  std::string vocab, merges;            // tokenizer files in the tree; empty if absent
};

// Finds the resources at `path` (folder or zip), looking at its root, then one and two folders
// down. Throws Error(kModel) if none or several candidate folders are found, or a required model
// (text encoder, UNet or both chunks, VAE decoder) is missing; Error(kIo) if `path` cannot be read.
// With require_complete false, missing models are left empty (for inspecting partial folders).
SDCoreMLResources find_sd_resources(const std::string& path, bool require_complete = true);

}  // namespace sdpal::coreml
