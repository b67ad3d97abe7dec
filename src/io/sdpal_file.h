// sdpal's single-file model format (docs/convert.md): one safetensors file holding every
// component's weights, configs and tokenizer, with palettized weights kept packed.
//
// Tensors (safetensors entries):
//   - a dense weight: "<component>.<diffusers name>", its dtype and shape as usual;
//   - a palettized weight X = "<component>.<diffusers name>": "X.indices" (U8, 1-D, the packed
//     LSB-first n-bit indices, ceil(nbits * numel / 8) bytes, core/palettized.h) and "X.lut" (F16,
//     shape = the table shape: [2^nbits], or [g_0, .., g_{K-1}, 2^nbits, 1] with one table per block).
//   Components: text_encoder, unet, vae, safety_checker.
// __metadata__ (all values strings):
//   format = "sdpal", sdpal.version = "1",
//   sdpal.palettized = JSON {"X": {"nbits": n, "shape": [...], "lut_shape": [...]}, ...},
//   sdpal.config.<component> = the component's diffusers config.json text (one per component),
//   sdpal.scheduler = scheduler_config.json, sdpal.model_index = model_index.json,
//   sdpal.tokenizer.vocab = vocab.json, sdpal.tokenizer.merges = merges.txt (the files' text),
//   sdpal.feature_extractor = preprocessor_config.json (with a safety checker),
//   and optionally other "sdpal.*" keys (sdpal.source, sdpal.converter, sdpal.tokenizer.*).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/palettized.h"
#include "io/safetensors.h"
#include "io/tensor_file.h"

namespace sdpal {

// The components a file may hold, in the order they are listed.
const std::vector<std::string>& sdpal_component_names();

// --- Writing -------------------------------------------------------------------------------

struct SdpalTensorToWrite {
  std::string name;                             // the diffusers name inside its component
  TensorToWrite dense;                          // used when `palettized` is null (dense.name ignored)
  const PalettizedView* palettized = nullptr;   // F16 table, vector size 1; must outlive the write
};

struct SdpalComponentToWrite {
  std::string name;         // one of sdpal_component_names()
  std::string config_json;  // the component's config.json text
  std::vector<SdpalTensorToWrite> tensors;
};

struct SdpalModelToWrite {
  std::vector<SdpalComponentToWrite> components;
  std::string model_index_json, scheduler_json, vocab_json, merges_txt;
  std::string feature_extractor_json;                 // "" when there is none
  std::map<std::string, std::string> extra_metadata;  // more keys, each starting with "sdpal."
};

// Writes `model` to `path` atomically (a temporary file renamed on success). Throws
// Error(kInvalidArgument) naming the component and tensor for unknown or repeated components,
// repeated names, names ending in ".indices" / ".lut", inconsistent palettized views, JSON texts
// that do not parse; Error(kIo) when writing fails.
void write_sdpal_file(const std::string& path, const SdpalModelToWrite& model);

// --- Reading -------------------------------------------------------------------------------

struct SdpalPalettizedInfo {
  int nbits = 0;
  Shape shape, lut_shape;
};

class SdpalFile {
 public:
  // Maps `path` once and validates everything (container, metadata JSON, palettized entries
  // against their .indices / .lut tensors, names). Throws Error(kIo) if it cannot be read,
  // Error(kFormat) naming the file (and tensor or key) if it is malformed, Error(kUnsupported)
  // for another format version.
  static std::shared_ptr<const SdpalFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  // Components with tensors or a config, in sdpal_component_names() order.
  const std::vector<std::string>& components() const { return components_; }
  bool has_component(const std::string& name) const;
  // The component's tensors under their diffusers names; palettized ones are TensorViews with
  // `palettized` set, packed, pointing into the mapping (their `owner` keeps it alive, as does the
  // returned file). Throws Error(kModel) naming the file when the component is absent.
  std::shared_ptr<TensorFile> component(const std::string& name) const;
  // The component's config.json text; Error(kModel) when absent.
  const std::string& config(const std::string& component) const;
  // A __metadata__ value, "" when absent.
  std::string metadata(const std::string& key) const { return container_->metadata(key); }
  // Palettized entries by full name ("<component>.<name>").
  const std::map<std::string, SdpalPalettizedInfo>& palettized() const { return palettized_; }
  // Bytes of the whole file.
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  SdpalFile() = default;
  std::string path_;
  std::shared_ptr<TensorFile> container_;
  std::vector<std::string> components_;
  std::map<std::string, std::shared_ptr<TensorFile>> files_;
  std::map<std::string, std::string> configs_;
  std::map<std::string, SdpalPalettizedInfo> palettized_;
  uint64_t file_bytes_ = 0;
};

// True when `path` is a regular file whose safetensors header says format "sdpal" (reads only
// the header; never throws).
bool looks_like_sdpal_file(const std::string& path);

}  // namespace sdpal
