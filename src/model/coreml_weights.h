// A compiled Core ML model's named weights as a TensorFile, so the native modules can bind them by
// their diffusers names (DESIGN.md: one name table per layout, one set of modules).
//
// Apple's converter names each weight constant after its torch module path with every
// non-alphanumeric character turned into '_' plus a type suffix ("_to_fp16", "_to_fp16_palettized",
// ...). CoreMLWeightFile indexes the `const` ops holding a BLOBFILE and every
// `constexpr_lut_to_dense` op by that base name (suffixes stripped): dense ones as views into the
// mapped weight.bin, palettized ones as packed views (TensorView::palettized, never expanded).
// Constants that carry no module path (var_N, add_N_gamma_0 ...) are GroupNorm / LayerNorm
// parameters: they are found by following the graph (model/coreml_norms.h) and indexed under the
// norm's module path as F32 tensors ("down_blocks_0_resnets_0_norm1_weight"); whatever is left
// is listed in anonymous().
//
// Binding: WeightBinder::set_name_mapper(coreml_name_mapper(layout)) makes a binder look up each
// diffusers name under its Core ML base name.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "io/tensor_file.h"

namespace sdpal {

namespace coreml {
class WeightFiles;
struct CoreMLModel;
struct MilFunction;
}

enum class CoreMLLayout { kUnet, kTextEncoder, kVaeDecoder };

// "down_blocks.0.resnets.0.conv1.weight" -> "down_blocks_0_resnets_0_conv1_weight".
std::string coreml_mangle(const std::string& name);
// A Core ML constant's base name: its variable name without "_palettized" and "_to_fp16" /
// "_to_fp32" suffixes.
std::string coreml_base_name(const std::string& var_name);
// False for converter-made names without a module path (var_N, op_N, add_N..., mul_N..., sub_N...).
bool coreml_has_module_path(const std::string& base_name);
// The Core ML base name of a diffusers parameter in `layout` (the layout's name table: e.g. the text
// encoder's "text_encoder_" prefix, the VAE's old attention names query/key/value/proj_attn).
std::string coreml_name(CoreMLLayout layout, const std::string& diffusers_name);
std::function<std::string(const std::string&)> coreml_name_mapper(CoreMLLayout layout);

class CoreMLWeightFile : public TensorFile {
 public:
  // mil_path: the model.mil; weights_dir: the folder whose "weights/weight.bin" the program's
  // "@model_path/weights/weight.bin" means (the .mlmodelc folder). Throws Error naming the file.
  static std::shared_ptr<CoreMLWeightFile> open(const std::string& mil_path, const std::string& weights_dir);
  // A loaded model (.mlmodelc or .mlpackage, on disk or in a zip); `model` is shared so the views
  // can keep its program and weight files alive.
  static std::shared_ptr<CoreMLWeightFile> open(std::shared_ptr<const coreml::CoreMLModel> model);

  const std::string& path() const override { return path_; }
  // Views named by base name (coreml_base_name); `owner` of each keeps the weight file mapped.
  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const TensorView* find(const std::string& name) const override;

  size_t palettized_count() const { return palettized_; }
  size_t derived_count() const { return derived_; }  // norm parameters found through the graph
  bool is_derived(const std::string& name) const { return derived_names_.count(name) != 0; }
  // GroupNorm's number of groups and the norms' epsilon as the graph has them (0 if no GroupNorm).
  int norm_groups() const { return norm_groups_; }
  float norm_eps() const { return norm_eps_; }
  size_t dense_count() const { return dense_; }
  // Blob constants without a module path (not in tensors()), by variable name.
  const std::vector<std::string>& anonymous() const { return anonymous_; }

 private:
  std::string path_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::vector<std::string> anonymous_;
  size_t palettized_ = 0, dense_ = 0, derived_ = 0;
  std::set<std::string> derived_names_;
  int norm_groups_ = 0;
  float norm_eps_ = 0.f;

  void index(const coreml::MilFunction& f, const coreml::WeightFiles* files, std::shared_ptr<const void> owner);
  std::shared_ptr<coreml::WeightFiles> files_;
  std::shared_ptr<const void> owner_;  // the parsed program and the weight files
};

}  // namespace sdpal
