// sdpal's single-file models (io/sdpal_file.h, docs/convert.md): loading one into the native
// modules, and converting any model source (a diffusers folder today) into one, optionally
// palettizing its weights (quant/palettize.h).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/tensor_file.h"
#include "model/diffusers_folder.h"

namespace sdpal {

// --- Loading --------------------------------------------------------------------------------

// True when `path` is a file whose safetensors metadata says format "sdpal" (reads the header
// only; never throws).
bool is_sdpal_file(const std::string& path);

// Builds the model as load_diffusers_folder does, from one sdpal file: configs, scheduler,
// tokenizer and feature extractor from its metadata, weights bound from the mapped file
// (palettized weights stay packed). Throws Error(kIo) when the file cannot be read, Error(kFormat)
// for a malformed file, Error(kModel) for a missing component or weights that do not bind.
std::unique_ptr<StableDiffusionModel> load_sdpal_file(const std::string& path, const LoadOptions& opts);

// --- Converting -----------------------------------------------------------------------------

// A model to convert, whatever it was read from: per component its config.json text and
// weight files (names as diffusers has them), plus the pipeline-level texts.
struct ModelSourceComponent {
  std::string name;                               // text_encoder, unet, vae or safety_checker
  std::string config_json;                        // the component's config.json text
  std::vector<std::shared_ptr<TensorFile>> files;  // its weights (shards), diffusers names
};

struct ModelSource {
  std::string path;  // for messages and the file's sdpal.source
  std::vector<ModelSourceComponent> components;
  std::string model_index_json, scheduler_json, vocab_json, merges_txt;
  std::string feature_extractor_json;                    // "" when there is no safety checker
  std::map<std::string, std::string> tokenizer_extra;    // e.g. "tokenizer_config" -> text
};

// A diffusers folder as a ModelSource (weights mapped, not read): text encoder, UNet, VAE and,
// when `safety_checker` and the folder has one, the safety checker. `variant` as LoadOptions.
ModelSource read_diffusers_source(const std::string& folder, const std::string& variant, bool safety_checker);

// An original single-file checkpoint as a ModelSource (model/ldm_checkpoint.h: names mapped to
// diffusers', configs inferred or from `config_dir`; the tokenizer from config_dir/tokenizer or CLIP's
// BPE vocabulary, SD 2.x with its "!" padding).
ModelSource read_ldm_source(const std::string& path, const std::string& config_dir);

// An sdpal file as a ModelSource (to re-convert it, e.g. palettize a dense one; its palettized
// weights are kept as they are).
ModelSource read_sdpal_source(const std::string& path, bool safety_checker);

struct ConvertOptions {
  int nbits = 0;           // 0: keep every weight dense; else palettize eligible weights to 1..8 bits
  int64_t group_size = 0;  // output channels per table (0: one table per tensor)
  DType dtype = DType::F16;  // dense float tensors are stored as this (F16, F32 or BF16)
  int64_t threshold = 2048;  // palettize only tensors with more elements (Core ML's weight_threshold)
};

// One converted tensor, reported as it is done (tensors are converted in parallel, so in the
// order they finish; the file's content does not depend on it).
struct ConvertTensorEvent {
  size_t index = 0, total = 0;  // index: 1 for the first tensor done, `total` for the last
  std::string component, name;
  Shape shape;
  DType source_dtype = DType::F32;
  std::string stored;             // "F16", or "6-bit palettized, LUT [64]"
  std::string note;               // why a weight above the threshold stayed dense, when it did
  uint64_t bytes_before = 0, bytes_after = 0;
  double snr_db = 0;              // palettized: weight SNR against the source values
  double seconds = 0;
};

struct ConvertSummary {
  size_t tensors = 0, palettized = 0;
  size_t left_dense = 0;      // with nbits: float weights above the threshold kept dense (embeddings..)
  uint64_t bytes_before = 0;  // source tensor bytes
  uint64_t bytes_after = 0;   // stored tensor bytes
  uint64_t file_bytes = 0;    // the written file, header included
  double seconds = 0;
};

// Converts `src` into the sdpal file `out` (written atomically), tensors in parallel on
// num_threads() workers; `progress` is called under a lock, one call at a time. Dense float tensors are stored
// as opts.dtype; with opts.nbits, every palettize_eligible() tensor is palettized (a tensor whose
// output channels are not a multiple of the group size stays dense, as coremltools skips it).
// Throws Error(kInvalidArgument) for bad options, Error(kModel) for tensors repeated across a
// component's files, Error(kIo) when writing fails.
ConvertSummary convert_to_sdpal(const ModelSource& src, const std::string& out, const ConvertOptions& opts,
                                const std::function<void(const ConvertTensorEvent&)>& progress = {});

}  // namespace sdpal
