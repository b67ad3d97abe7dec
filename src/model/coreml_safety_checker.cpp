#include "model/coreml_safety_checker.h"

#include <map>
#include <optional>

#include "core/error.h"
#include "io/coreml/mil_consts.h"
#include "model/coreml_configs.h"

namespace sdpal {

namespace {

using coreml::MilBinding;
using coreml::MilBlock;
using coreml::MilOp;
using coreml::MilVarRef;

const std::string kVision = "vision_model_vision_model_";

// F32 tensors held in memory, by name.
class OwnedTensorFile final : public TensorFile {
 public:
  explicit OwnedTensorFile(std::string path) : path_(std::move(path)) {}
  void add(const std::string& name, Tensor t) {
    auto held = std::make_shared<Tensor>(std::move(t));
    TensorView v;
    v.name = name;
    v.dtype = DType::F32;
    v.shape = held->shape();
    v.data = reinterpret_cast<const uint8_t*>(held->f32());
    v.nbytes = held->nbytes();
    v.owner = held;
    index_.emplace(name, views_.size());
    views_.push_back(std::move(v));
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorView>& tensors() const override { return views_; }
  const TensorView* find(const std::string& name) const override {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &views_[it->second];
  }

 private:
  std::string path_;
  std::vector<TensorView> views_;
  std::map<std::string, size_t> index_;
};

// Follows a program's graph: producers, constants (inline, const ops, palettized tables) as F32.
struct Graph {
  const coreml::CoreMLModel& model;
  const MilBlock& block;

  const MilOp* producer(const MilBinding& b) const {
    if (b.is_value() || b.ref.source != MilVarRef::Source::kOpOutput || b.ref.depth != 0) return nullptr;
    return &block.ops.at(size_t(b.ref.op));
  }
  static const MilBinding* single(const MilOp& op, const char* name) {
    const coreml::MilArgument* a = op.input(name);
    return a && a->bindings.size() == 1 ? &a->bindings[0] : nullptr;
  }
  std::optional<Tensor> constant(const MilBinding* b) const {
    if (!b) return std::nullopt;
    if (const coreml::MilValue* v = coreml::const_value(block, *b)) {
      if (v->kind == coreml::MilValue::Kind::kTensor && !coreml::mil_dtype_is_float(v->type.dtype)) return std::nullopt;
      return to_f32(coreml::const_tensor_view(*v, model.weights.get(), b->name));
    }
    const MilOp* p = producer(*b);
    if (p && p->type == "constexpr_lut_to_dense")
      return to_f32(palettized_tensor_view(coreml::palettized_view(block, *p, model.weights.get())));
    return std::nullopt;
  }
  // The ops reading variable `name`.
  static bool reads(const MilOp& op, const std::string& name) {
    for (const auto& arg : op.inputs)
      for (const MilBinding& b : arg.bindings)
        if (!b.is_value() && b.name == name) return true;
    return false;
  }
  std::vector<const MilOp*> consumers(const std::string& name) const {
    std::vector<const MilOp*> r;
    for (const MilOp& op : block.ops)
      if (reads(op, name)) r.push_back(&op);
    return r;
  }
};

// scores = input . embeds^T + offset: one of the two score layers.
struct ScoreLayer {
  Tensor embeds;               // [K, P]
  std::vector<float> offset;   // [K]: minus the thresholds
  std::string input;           // the normalized image embedding's variable
};

// Adds a constant ([K], [1, K] or a scalar) times `sign` to r.offset.
bool add_offset(ScoreLayer& r, const Tensor& c, float sign) {
  const int64_t k = int64_t(r.offset.size());
  if (c.numel() != k && c.numel() != 1) return false;
  for (int64_t i = 0; i < k; ++i) r.offset[size_t(i)] += sign * c.f32()[c.numel() == 1 ? 0 : i];
  return true;
}

// Walks back from `b` through casts and constant add / sub to a linear (or matmul) with constant
// weights; where an add has two computed operands (the adjustment), the branch that reaches one.
std::optional<ScoreLayer> trace_scores(const Graph& g, const MilBinding* b, int depth = 0) {
  if (!b || depth > 8) return std::nullopt;
  const MilOp* op = g.producer(*b);
  if (!op) return std::nullopt;
  if (op->type == "cast") return trace_scores(g, Graph::single(*op, "x"), depth + 1);
  if (op->type == "linear") {
    std::optional<Tensor> w = g.constant(Graph::single(*op, "weight"));
    const MilBinding* x = Graph::single(*op, "x");
    if (!w || w->rank() != 2 || !x || x->is_value()) return std::nullopt;
    ScoreLayer r{*w, std::vector<float>(size_t(w->dim(0)), 0.f), x->name};
    if (std::optional<Tensor> bias = g.constant(Graph::single(*op, "bias")))
      if (!add_offset(r, *bias, 1.f)) return std::nullopt;
    return r;
  }
  if (op->type == "matmul") {
    const MilBinding* x = Graph::single(*op, "x");
    std::optional<Tensor> y = g.constant(Graph::single(*op, "y"));
    const coreml::MilValue* tx = coreml::const_operand(g.block, *op, "transpose_x");
    const coreml::MilValue* ty = coreml::const_operand(g.block, *op, "transpose_y");
    if (!x || x->is_value() || !y || y->rank() != 2 || (tx && tx->scalar_bool())) return std::nullopt;
    Tensor e = *y;  // [P, K] unless transpose_y
    if (!(ty && ty->scalar_bool())) {
      e = Tensor::empty({y->dim(1), y->dim(0)});
      for (int64_t i = 0; i < y->dim(0); ++i)
        for (int64_t j = 0; j < y->dim(1); ++j) e.f32()[j * y->dim(0) + i] = y->f32()[i * y->dim(1) + j];
    }
    return ScoreLayer{e, std::vector<float>(size_t(e.dim(0)), 0.f), x->name};
  }
  if (op->type == "add" || op->type == "sub") {
    const MilBinding* x = Graph::single(*op, "x");
    const MilBinding* y = Graph::single(*op, "y");
    const std::optional<Tensor> cx = g.constant(x), cy = g.constant(y);
    const float sign = op->type == "sub" ? -1.f : 1.f;
    if (cy && !cx) {
      auto r = trace_scores(g, x, depth + 1);
      if (r && add_offset(*r, *cy, sign)) return r;
      return std::nullopt;
    }
    if (cx && !cy && op->type == "add") {
      auto r = trace_scores(g, y, depth + 1);
      if (r && add_offset(*r, *cx, 1.f)) return r;
      return std::nullopt;
    }
    if (!cx && !cy && op->type == "add") {
      if (auto r = trace_scores(g, x, depth + 1)) return r;
      return trace_scores(g, y, depth + 1);
    }
  }
  return std::nullopt;
}

// diffusers' parameters from a score layer: embeddings and thresholds (= -offset).
void add_score_layer(OwnedTensorFile& out, const ScoreLayer& s, const std::string& name) {
  out.add(name, s.embeds);
  Tensor thr = Tensor::empty({int64_t(s.offset.size())});
  for (size_t i = 0; i < s.offset.size(); ++i) thr.f32()[i] = -s.offset[i];
  out.add(name + "_weights", std::move(thr));
}

}  // namespace

ClipVisionConfig safety_checker_config_from_coreml(const CoreMLWeightFile& w, const coreml::CoreMLModel& model) {
  auto need = [&](const std::string& name) -> const TensorView& {
    const TensorView* v = w.find(name);
    if (!v) fail(ErrorCode::kModel, w.path() + ": no weight '" + name + "' (is this Apple's SafetyChecker model?)");
    return *v;
  };
  const TensorView& patch = need(kVision + "embeddings_patch_embedding_weight");  // [D, 3, P, P]
  const TensorView& fc1 = need(kVision + "encoder_layers_0_mlp_fc1_weight");       // [I, D]
  const TensorView& proj = need("visual_projection_weight");                        // [proj, D]
  check(patch.shape.size() == 4 && fc1.shape.size() == 2 && proj.shape.size() == 2, ErrorCode::kModel,
        w.path() + ": unexpected safety checker weight shapes");
  ClipVisionConfig cfg;
  cfg.hidden_size = int(patch.shape[0]);
  cfg.num_channels = int(patch.shape[1]);
  cfg.patch_size = int(patch.shape[2]);
  cfg.intermediate_size = int(fc1.shape[0]);
  cfg.projection_dim = int(proj.shape[0]);
  int layers = 0;
  while (w.find(kVision + "encoder_layers_" + std::to_string(layers) + "_layer_norm1_weight")) ++layers;
  cfg.num_layers = layers;
  const coreml::MilFunction& main = model.program.main();
  const int heads = coreml_attention_heads(main, kVision + "encoder_layers_0_self_attn_q_proj_weight", cfg.hidden_size);
  cfg.num_heads = heads > 0 ? heads : cfg.hidden_size / 64;
  bool gelu = false;
  for (const MilOp& op : main.block.ops) gelu = gelu || op.type == "gelu";
  cfg.act = gelu ? Activation::Gelu : Activation::QuickGelu;
  cfg.image_size = 0;
  for (const auto& in : main.inputs)
    if (in.name == "clip_input" && in.type.is_tensor() && in.type.shape.size() == 4) cfg.image_size = int(in.type.shape[2]);
  check(cfg.image_size > 0 && cfg.image_size % cfg.patch_size == 0, ErrorCode::kModel,
        w.path() + ": no clip_input [1, 3, S, S] input with S a multiple of the patch size");
  for (const MilOp& op : main.block.ops)
    if (op.type == "layer_norm")
      if (const coreml::MilValue* eps = coreml::const_operand(main.block, op, "epsilon")) {
        cfg.layer_norm_eps = float(eps->scalar_float());
        break;
      }
  return cfg;
}

std::shared_ptr<TensorFile> safety_checker_folded_constants(const coreml::CoreMLModel& model, const ClipVisionConfig& cfg) {
  const std::string where = model.tree ? model.tree->display(model.files.program) : model.location;
  const coreml::MilFunction& main = model.program.main();
  const Graph g{model, main.block};
  auto out = std::make_shared<OwnedTensorFile>(where + " (folded constants)");
  const int64_t d = cfg.hidden_size;
  const int64_t positions = int64_t(cfg.image_size / cfg.patch_size) * (cfg.image_size / cfg.patch_size) + 1;

  // Embeddings: concat(class embedding, patches), then + position embedding.
  bool found = false;
  for (const MilOp& op : main.block.ops) {
    if (op.type != "concat" || op.outputs.empty()) continue;
    const coreml::MilArgument* values = op.input("values");
    if (!values) continue;
    std::optional<Tensor> cls;
    for (const MilBinding& b : values->bindings)
      if (auto c = g.constant(&b); c && c->numel() == d) cls = c;
    if (!cls) continue;
    for (const MilOp* add : g.consumers(op.outputs[0].name)) {
      if (add->type != "add") continue;
      std::optional<Tensor> pos = g.constant(Graph::single(*add, "y"));
      if (!pos) pos = g.constant(Graph::single(*add, "x"));
      if (!pos || pos->numel() != positions * d) continue;
      out->add(kVision + "embeddings_class_embedding", cls->reshape({d}));
      out->add(kVision + "embeddings_position_embedding_weight", pos->reshape({positions, d}));
      found = true;
      break;
    }
    if (found) break;
  }
  check(found, ErrorCode::kModel,
        where + ": cannot find the class and position embeddings (a concat with a " + std::to_string(d) +
            "-element constant, then an add of a " + std::to_string(positions) + " x " + std::to_string(d) + " one)");

  // Special-care scores: what the `adjustment` input is added to.
  std::optional<ScoreLayer> special;
  for (const MilOp& op : main.block.ops) {
    if (op.type != "add" || op.outputs.empty()) continue;
    if (!Graph::reads(op, "adjustment")) continue;
    for (const char* operand : {"x", "y"}) {
      const MilBinding* b = Graph::single(op, operand);
      if (b && b->name != "adjustment" && (special = trace_scores(g, b))) break;
    }
    if (special) break;
  }
  check(special.has_value(), ErrorCode::kModel,
        where + ": cannot find the special-care scores (the constant linear layer the 'adjustment' input is added to)");

  // Concept scores: where the concept_scores output comes from.
  std::optional<ScoreLayer> concepts;
  for (size_t j = 0; j < main.block.outputs.size(); ++j)
    if (main.block.outputs[j] == "concept_scores") {
      MilBinding b;
      b.name = main.block.outputs[j];
      b.ref = main.block.output_refs.at(j);
      concepts = trace_scores(g, &b);
    }
  check(concepts.has_value(), ErrorCode::kModel,
        where + ": cannot find the concept scores (a constant linear layer behind the 'concept_scores' output)");
  check(concepts->input == special->input, ErrorCode::kModel,
        where + ": the concept and special-care scores are computed from different variables ('" + concepts->input +
            "', '" + special->input + "')");
  add_score_layer(*out, *concepts, "concept_embeds");
  add_score_layer(*out, *special, "special_care_embeds");
  return out;
}

}  // namespace sdpal
