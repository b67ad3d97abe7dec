#include "model/coreml_weights.h"

#include <cctype>
#include <set>

#include "core/error.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/model_folder.h"
#include "model/coreml_norms.h"

namespace sdpal {

std::string coreml_mangle(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return out;
}

namespace {

bool strip_suffix(std::string& s, const std::string& suffix) {
  if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

bool replace_all(std::string& s, const std::string& from, const std::string& to) {
  bool any = false;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
    any = true;
  }
  return any;
}

}  // namespace

bool coreml_has_module_path(const std::string& base) {
  // Converter-made names: an op type, a number, then anything ("linear_12_bias_0", "add_3_gamma_0").
  for (const char* anon : {"var_", "op_", "add_", "mul_", "sub_", "linear_", "conv_", "matmul_", "concat_",
                           "reshape_", "transpose_", "layer_norm_", "batch_norm_", "real_div_", "cast_",
                           "expand_dims_", "squeeze_", "tile_"}) {
    const std::string a(anon);
    if (base.rfind(a, 0) == 0 && base.size() > a.size() && std::isdigit(static_cast<unsigned char>(base[a.size()])))
      return false;
  }
  // Norm parameters a fusion pass made, named after the fused op's output variable: coremltools 8.1
  // turns Apple's LayerNormANE into layer_norm(gamma = input_25_gamma_0, beta = input_25_beta_0).
  for (const char* made : {"_gamma_0", "_beta_0", "_mean_0", "_variance_0"}) {
    const std::string m(made);
    if (base.size() > m.size() && base.compare(base.size() - m.size(), m.size(), m) == 0) return false;
  }
  return true;
}

std::string coreml_base_name(const std::string& var_name) {
  std::string s = var_name;
  strip_suffix(s, "_palettized");
  if (!strip_suffix(s, "_to_fp16")) strip_suffix(s, "_to_fp32");
  return s;
}

std::string coreml_name(CoreMLLayout layout, const std::string& diffusers_name) {
  std::string m = coreml_mangle(diffusers_name);
  switch (layout) {
    case CoreMLLayout::kUnet:
      return m;
    case CoreMLLayout::kTextEncoder:
      if (diffusers_name == "text_model.embeddings.position_embedding.weight") return "position_embeddings";
      return "text_encoder_" + m;
    case CoreMLLayout::kVaeDecoder:
      // Apple converts with diffusers' old attention names.
      replace_all(m, "_attentions_0_to_q_", "_attentions_0_query_");
      replace_all(m, "_attentions_0_to_k_", "_attentions_0_key_");
      replace_all(m, "_attentions_0_to_v_", "_attentions_0_value_");
      replace_all(m, "_attentions_0_to_out_0_", "_attentions_0_proj_attn_");
      return m;
  }
  return m;
}

std::function<std::string(const std::string&)> coreml_name_mapper(CoreMLLayout layout) {
  return [layout](const std::string& name) { return coreml_name(layout, name); };
}

std::shared_ptr<CoreMLWeightFile> CoreMLWeightFile::open(const std::string& mil_path, const std::string& weights_dir) {
  using namespace coreml;
  auto file = std::shared_ptr<CoreMLWeightFile>(new CoreMLWeightFile());
  file->path_ = mil_path;
  file->files_ = WeightFiles::in_directory(weights_dir);
  // Views point into the mapped weight files and, for inline values (small LUTs), into the parsed
  // program: the owner keeps both alive.
  struct Owner {
    MilProgram program;
    std::shared_ptr<WeightFiles> files;
  };
  auto held = std::make_shared<Owner>(Owner{read_mil_text_file(mil_path), file->files_});
  file->owner_ = held;
  file->index(held->program.main(), file->files_.get(), held);
  return file;
}

std::shared_ptr<CoreMLWeightFile> CoreMLWeightFile::open(std::shared_ptr<const coreml::CoreMLModel> model) {
  auto file = std::shared_ptr<CoreMLWeightFile>(new CoreMLWeightFile());
  file->path_ = model->tree ? model->tree->display(model->files.program) : model->location;
  file->files_ = model->weights;
  file->owner_ = model;
  file->index(model->program.main(), model->weights.get(), model);
  return file;
}

void CoreMLWeightFile::index(const coreml::MilFunction& f, const coreml::WeightFiles* files,
                             std::shared_ptr<const void> owner) {
  using namespace coreml;
  const std::string& source = path_;
  std::vector<std::string> anonymous;
  for (const MilOp& op : f.block.ops) {
    if (op.outputs.empty()) continue;
    const std::string var = op.outputs.front().name;
    TensorView v;
    if (op.type == "constexpr_lut_to_dense") {
      PalettizedView p = palettized_view(f.block, op, files);
      p.name = var;
      v = palettized_tensor_view(std::move(p), owner);
    } else if (op.type == "const") {
      const MilValue* val = op.attribute("val");
      if (!val) continue;
      if (val->kind == MilValue::Kind::kTensor) {
        // Small parameters (e.g. a 4-channel bias) are written inline in the program.
        const std::string b = coreml_base_name(var);
        const bool param = b.size() > 5 && (b.compare(b.size() - 5, 5, "_bias") == 0 ||
                                            (b.size() > 7 && b.compare(b.size() - 7, 7, "_weight") == 0));
        if (!param || !mil_dtype_is_float(val->type.dtype) || val->type.shape.empty()) continue;
      } else if (val->kind != MilValue::Kind::kBlob) {
        continue;
      }
      v = const_tensor_view(*val, files, var);
      v.owner = owner;
    } else {
      continue;
    }
    const std::string base = coreml_base_name(var);
    if (!coreml_has_module_path(base)) {
      anonymous.push_back(var);
      continue;
    }
    // The text encoder's position table is stored as [1, positions, width] (a broadcast operand).
    if (base == "position_embeddings" && v.shape.size() == 3 && v.shape[0] == 1 &&
        (!v.palettized || v.palettized->lut_shape.size() == 1))
      v = reshape_view(v, {v.shape[1], v.shape[2]});
    (v.palettized ? palettized_ : dense_)++;
    v.name = base;
    if (!index_.emplace(base, tensors_.size()).second)
      fail(ErrorCode::kFormat, source + ": two constants named '" + base + "' (" + var + ")");
    tensors_.push_back(std::move(v));
  }
  // GroupNorm / LayerNorm parameters, found through the graph, as owned F32 tensors.
  std::set<std::string> consumed;
  for (CoreMLNorm& n : find_coreml_norms(f.block, files, source)) {
    for (const std::string& c : n.consumed) consumed.insert(c);
    if (n.groups > 0 && norm_groups_ == 0) {
      norm_groups_ = n.groups;
      norm_eps_ = n.eps;
    }
    for (auto* part : {&n.weight, &n.bias}) {
      auto t = std::make_shared<Tensor>(std::move(*part));
      TensorView v;
      v.name = n.base + (part == &n.weight ? "_weight" : "_bias");
      v.dtype = DType::F32;
      v.shape = t->shape();
      v.data = reinterpret_cast<const uint8_t*>(t->f32());
      v.nbytes = t->nbytes();
      v.owner = t;
      if (!index_.emplace(v.name, tensors_.size()).second)
        fail(ErrorCode::kFormat, source + ": norm parameter '" + v.name + "' is also a named constant");
      derived_names_.insert(v.name);
      tensors_.push_back(std::move(v));
      ++derived_;
    }
  }
  for (std::string& a : anonymous)
    if (!consumed.count(a)) anonymous_.push_back(std::move(a));
}

const TensorView* CoreMLWeightFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace sdpal
