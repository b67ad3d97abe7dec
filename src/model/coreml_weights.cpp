#include "model/coreml_weights.h"

#include <cctype>

#include "core/error.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"

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

// A variable name that carries a module path (not var_N / op_N / add_N_gamma_0 ...).
bool has_module_path(const std::string& base) {
  for (const char* anon : {"var_", "op_", "add_", "mul_", "sub_"}) {
    const std::string a(anon);
    if (base.rfind(a, 0) == 0 && base.size() > a.size() && std::isdigit(static_cast<unsigned char>(base[a.size()])))
      return false;
  }
  return true;
}

}  // namespace

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
  std::shared_ptr<const void> owner = held;
  const MilFunction& f = held->program.main();
  for (const MilOp& op : f.block.ops) {
    if (op.outputs.empty()) continue;
    const std::string var = op.outputs.front().name;
    TensorView v;
    if (op.type == "constexpr_lut_to_dense") {
      PalettizedView p = palettized_view(f.block, op, file->files_.get());
      p.name = var;
      v = palettized_tensor_view(std::move(p), owner);
    } else if (op.type == "const") {
      const MilValue* val = op.attribute("val");
      if (!val || val->kind != MilValue::Kind::kBlob) continue;
      v = const_tensor_view(*val, file->files_.get(), var);
      v.owner = owner;
    } else {
      continue;
    }
    const std::string base = coreml_base_name(var);
    if (!has_module_path(base)) {
      file->anonymous_.push_back(var);
      continue;
    }
    // The text encoder's position table is stored as [1, positions, width] (a broadcast operand).
    if (base == "position_embeddings" && v.shape.size() == 3 && v.shape[0] == 1 &&
        (!v.palettized || v.palettized->lut_shape.size() == 1)) {
      v.shape = {v.shape[1], v.shape[2]};
      if (v.palettized) {
        auto p = std::make_shared<PalettizedView>(*v.palettized);
        p->shape = v.shape;
        v.palettized = p;
      }
    }
    (v.palettized ? file->palettized_ : file->dense_)++;
    v.name = base;
    if (!file->index_.emplace(base, file->tensors_.size()).second)
      fail(ErrorCode::kFormat, mil_path + ": two constants named '" + base + "' (" + var + ")");
    file->tensors_.push_back(std::move(v));
  }
  return file;
}

const TensorView* CoreMLWeightFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace sdpal
