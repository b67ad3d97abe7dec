#include "model/coreml_norms.h"

#include <cmath>
#include <map>
#include <optional>

#include "core/error.h"
#include "io/coreml/mil_consts.h"
#include "io/tensor_file.h"
#include "model/coreml_weights.h"

namespace sdpal {

namespace {

using coreml::MilBinding;
using coreml::MilBlock;
using coreml::MilOp;
using coreml::MilVarRef;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const MilBinding* single(const MilOp& op, std::string_view name) {
  const coreml::MilArgument* a = op.input(name);
  return a && a->bindings.size() == 1 ? &a->bindings[0] : nullptr;
}

const MilOp* producer(const MilBlock& block, const MilBinding& b) {
  if (b.is_value() || b.ref.source != MilVarRef::Source::kOpOutput || b.ref.depth != 0) return nullptr;
  return &block.ops[size_t(b.ref.op)];
}

// The value of a constant operand as F32 (inline, `const`, or a palettized constexpr), else none.
std::optional<Tensor> const_f32(const MilBlock& block, const MilBinding& b, const coreml::WeightFiles* files) {
  if (b.is_value()) return to_f32(coreml::const_tensor_view(*b.value, files, "inline value"));
  const MilOp* p = producer(block, b);
  if (!p) return std::nullopt;
  if (p->type == "const") {
    const coreml::MilValue* v = p->attribute("val");
    if (!v || (v->kind != coreml::MilValue::Kind::kTensor && v->kind != coreml::MilValue::Kind::kBlob))
      return std::nullopt;
    return to_f32(coreml::const_tensor_view(*v, files, b.name));
  }
  if (p->type == "constexpr_lut_to_dense") return to_f32(palettized_tensor_view(coreml::palettized_view(block, *p, files)));
  return std::nullopt;
}

bool is_const(const MilBlock& block, const MilBinding& b) {
  if (b.is_value()) return true;
  const MilOp* p = producer(block, b);
  return p && (p->type == "const" || p->type.rfind("constexpr_", 0) == 0);
}

// A per-channel constant as a [C] vector (accepts [C], [1, C, 1, 1], [1, C], [1, 1, C]).
Tensor channel_vector(Tensor t, const std::string& what, const std::string& source) {
  int64_t c = 0, non1 = 0;
  for (int64_t d : t.shape())
    if (d != 1) c = d, ++non1;
  if (non1 > 1) fail(ErrorCode::kFormat, source + ": " + what + " is not a per-channel vector");
  if (non1 == 0) c = 1;
  Tensor out = Tensor::empty({c});
  std::copy(t.f32(), t.f32() + c, out.f32());
  return out;
}

// For `a op b` with exactly one constant operand: (constant, variable).
std::optional<std::pair<const MilBinding*, const MilBinding*>> split_const(const MilBlock& block, const MilOp& op) {
  const MilBinding* x = single(op, "x");
  const MilBinding* y = single(op, "y");
  if (!x || !y) return std::nullopt;
  const bool cx = is_const(block, *x), cy = is_const(block, *y);
  if (cx == cy) return std::nullopt;
  return cx ? std::make_pair(x, y) : std::make_pair(y, x);
}

// The epsilon added before sqrt / rsqrt in a normalization's denominator, searching a few ops back
// from `b` (the normalized value's producer chain). 0 when not found.
float find_eps(const MilBlock& block, const MilBinding* b, const coreml::WeightFiles* files, int* groups) {
  for (int hop = 0; b && hop < 6; ++hop) {
    const MilOp* p = producer(block, *b);
    if (!p) return 0.f;
    if (groups && p->outputs.size() == 1 && p->outputs[0].type.shape.size() == 5 && *groups == 0)
      *groups = int(p->outputs[0].type.shape[1]);
    if (p->type == "real_div" || (p->type == "mul" && !split_const(block, *p))) {
      // normalized = centred / sqrt(var + eps)  or  centred * rsqrt(var + eps)
      const MilBinding* d = single(*p, "y");
      const MilOp* root = d ? producer(block, *d) : nullptr;
      if (root && (root->type == "sqrt" || root->type == "rsqrt")) {
        const MilBinding* s = single(*root, "x");
        const MilOp* add = s ? producer(block, *s) : nullptr;
        if (add && add->type == "add")
          if (auto cv = split_const(block, *add))
            if (auto e = const_f32(block, *cv->first, files); e && e->numel() == 1) return e->f32()[0];
      }
    }
    b = single(*p, "x");
  }
  return 0.f;
}

// The norm module a named layer's input comes from, by the layer's module path; "" for none.
std::string norm_for_consumer(const std::string& module) {
  const std::string tb = "_transformer_blocks_";
  if (size_t p = module.rfind(tb); p != std::string::npos) {
    const size_t q = module.find('_', p + tb.size());
    if (q == std::string::npos) return "";
    const std::string block = module.substr(0, q + 1), rest = module.substr(q + 1);
    if (rest == "attn1_to_q" || rest == "attn1_to_k" || rest == "attn1_to_v") return block + "norm1";
    if (rest == "attn2_to_q") return block + "norm2";
    if (rest == "ff_net_0_proj") return block + "norm3";
    return "";
  }
  if (module.find("_resnets_") != std::string::npos) {
    if (ends_with(module, "_conv1")) return module.substr(0, module.size() - 5) + "norm1";
    if (ends_with(module, "_conv2")) return module.substr(0, module.size() - 5) + "norm2";
    return "";
  }
  if (module.find("_attentions_") != std::string::npos) {
    if (ends_with(module, "_proj_in")) return module.substr(0, module.size() - 7) + "norm";
    for (const char* s : {"_query", "_key", "_value", "_to_q", "_to_k", "_to_v"})
      if (ends_with(module, s)) return module.substr(0, module.size() - std::string(s).size()) + "_group_norm";
    return "";
  }
  if (module == "conv_out") return "conv_norm_out";
  if (ends_with(module, "_conv_out")) return module.substr(0, module.size() - 8) + "conv_norm_out";
  return "";
}

// Walks back from a named layer's input to the norm feeding it. nullopt if none is found or its
// parameters already have a module path.
std::optional<CoreMLNorm> trace_norm(const MilBlock& block, const MilBinding* x, const coreml::WeightFiles* files,
                                     const std::string& source) {
  for (int hop = 0; x && hop < 8; ++hop) {
    const MilOp* p = producer(block, *x);
    if (!p) return std::nullopt;
    const std::string& t = p->type;
    if (t == "silu" || t == "cast" || t == "reshape" || t == "transpose" || t == "expand_dims" || t == "squeeze") {
      x = single(*p, "x");
      continue;
    }
    CoreMLNorm n;
    if (t == "batch_norm") {
      const MilBinding *g = single(*p, "gamma"), *b = single(*p, "beta"), *m = single(*p, "mean"),
                       *v = single(*p, "variance"), *e = single(*p, "epsilon");
      if (!m || !v) return std::nullopt;
      auto mean = const_f32(block, *m, files), var = const_f32(block, *v, files);
      if (!mean || !var) return std::nullopt;
      Tensor mu = channel_vector(*mean, p->where() + " mean", source);
      Tensor sigma2 = channel_vector(*var, p->where() + " variance", source);
      const int64_t c = mu.numel();
      Tensor gamma = Tensor::empty({c}), beta = Tensor::zeros({c});
      std::fill(gamma.f32(), gamma.f32() + c, 1.f);
      if (g) {
        auto gv = const_f32(block, *g, files);
        if (!gv) return std::nullopt;
        gamma = channel_vector(*gv, p->where() + " gamma", source);
        n.consumed.push_back(g->name);
      }
      if (b) {
        auto bv = const_f32(block, *b, files);
        if (!bv) return std::nullopt;
        beta = channel_vector(*bv, p->where() + " beta", source);
        n.consumed.push_back(b->name);
      }
      double eps = 1e-5;  // batch_norm's default
      if (e) {
        auto ev = const_f32(block, *e, files);
        if (ev && ev->numel() == 1) eps = ev->f32()[0];
      }
      if (gamma.numel() != c || beta.numel() != c || sigma2.numel() != c)
        fail(ErrorCode::kFormat, source + ": " + p->where() + ": parameters of different lengths");
      n.consumed.push_back(m->name);
      n.consumed.push_back(v->name);
      n.kind = "group_norm";
      n.weight = Tensor::empty({c});
      n.bias = Tensor::empty({c});
      for (int64_t i = 0; i < c; ++i) {
        const double w = double(gamma.f32()[i]) / std::sqrt(double(sigma2.f32()[i]) + eps);
        n.weight.f32()[i] = float(w);
        n.bias.f32()[i] = float(double(beta.f32()[i]) - double(mu.f32()[i]) * w);
      }
      n.eps = find_eps(block, single(*p, "x"), files, &n.groups);
      return n;
    }
    if (t == "mul" || t == "add") {
      // LayerNormANE: mul(add(normalized, c1), c2); a plain affine: add(mul(normalized, w), b).
      auto outer = split_const(block, *p);
      if (!outer) return std::nullopt;
      const MilOp* inner = producer(block, *outer->second);
      const std::string inner_type = t == "mul" ? "add" : "mul";
      if (!inner || inner->type != inner_type) return std::nullopt;
      auto in = split_const(block, *inner);
      if (!in) return std::nullopt;
      auto c_outer = const_f32(block, *outer->first, files), c_inner = const_f32(block, *in->first, files);
      if (!c_outer || !c_inner) return std::nullopt;
      Tensor a = channel_vector(*c_inner, inner->where(), source), b = channel_vector(*c_outer, p->where(), source);
      if (a.numel() != b.numel()) fail(ErrorCode::kFormat, source + ": " + p->where() + ": parameters of different lengths");
      const int64_t c = a.numel();
      n.weight = Tensor::empty({c});
      n.bias = Tensor::empty({c});
      for (int64_t i = 0; i < c; ++i) {
        if (t == "mul") {  // (x + c1) * c2
          n.weight.f32()[i] = b.f32()[i];
          n.bias.f32()[i] = a.f32()[i] * b.f32()[i];
        } else {  // x * w + b
          n.weight.f32()[i] = a.f32()[i];
          n.bias.f32()[i] = b.f32()[i];
        }
      }
      n.kind = t == "mul" ? "layer_norm_ane" : "affine";
      for (const MilBinding* cb : {in->first, outer->first})
        if (!cb->is_value()) n.consumed.push_back(cb->name);
      n.eps = find_eps(block, in->second, files, &n.groups);
      return n;
    }
    if (t == "layer_norm" || t == "instance_norm") {
      const MilBinding *g = single(*p, "gamma"), *b = single(*p, "beta");
      if (!g || !b || g->is_value() || b->is_value()) return std::nullopt;
      if (coreml_has_module_path(coreml_base_name(g->name))) return std::nullopt;  // already named
      auto gv = const_f32(block, *g, files), bv = const_f32(block, *b, files);
      if (!gv || !bv) return std::nullopt;
      n.kind = t;
      n.weight = channel_vector(*gv, p->where() + " gamma", source);
      n.bias = channel_vector(*bv, p->where() + " beta", source);
      n.consumed = {g->name, b->name};
      if (const MilBinding* e = single(*p, "epsilon"))
        if (auto ev = const_f32(block, *e, files); ev && ev->numel() == 1) n.eps = ev->f32()[0];
      return n;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

bool same_values(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::equal(a.f32(), a.f32() + a.numel(), b.f32());
}

}  // namespace

std::vector<CoreMLNorm> find_coreml_norms(const MilBlock& block, const coreml::WeightFiles* files,
                                          const std::string& source) {
  std::vector<CoreMLNorm> norms;
  std::map<std::string, size_t> by_name;
  for (const MilOp& op : block.ops) {
    const char* weight_arg = op.type == "conv" || op.type == "linear" ? "weight" : op.type == "matmul" ? "y" : nullptr;
    if (!weight_arg) continue;
    const MilBinding* w = single(op, weight_arg);
    if (!w || w->is_value() || !is_const(block, *w)) continue;
    const std::string base = coreml_base_name(w->name);
    if (!ends_with(base, "_weight") || !coreml_has_module_path(base)) continue;
    const std::string norm_name = norm_for_consumer(base.substr(0, base.size() - 7));
    if (norm_name.empty()) continue;
    std::optional<CoreMLNorm> n = trace_norm(block, single(op, "x"), files, source);
    if (!n) continue;
    n->base = norm_name;
    if (auto it = by_name.find(norm_name); it != by_name.end()) {
      const CoreMLNorm& prev = norms[it->second];
      if (!same_values(prev.weight, n->weight) || !same_values(prev.bias, n->bias))
        fail(ErrorCode::kFormat, source + ": " + op.where() + " reaches a different '" + norm_name +
                                     "' than another layer of the same module");
      continue;
    }
    by_name.emplace(norm_name, norms.size());
    norms.push_back(std::move(*n));
  }
  return norms;
}

}  // namespace sdpal
