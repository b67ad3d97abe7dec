#include "mil/interpreter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "io/coreml/model_folder.h"
#include "mil/ops.h"
#include "mil/tensor_util.h"

namespace sdpal::mil {

using coreml::MilBinding;
using coreml::MilDType;
using coreml::MilOp;
using coreml::MilValue;
using coreml::MilVarRef;
using detail::Value;

namespace detail {

// ---- OpContext ---------------------------------------------------------------------------------

void OpContext::fail(const std::string& msg, ErrorCode code) const { sdpal::fail(code, where() + ": " + msg); }

const MilBinding* OpContext::binding(std::string_view name) const {
  const coreml::MilArgument* a = op_.input(name);
  if (!a) return nullptr;
  if (a->bindings.size() != 1)
    fail("operand '" + std::string(name) + "' has " + std::to_string(a->bindings.size()) + " bindings, expected one");
  return &a->bindings[0];
}

bool OpContext::has(std::string_view name) const {
  if (op_.input(name)) return true;
  return name != "name" && op_.attribute(name) != nullptr;
}

const MilValue* OpContext::constant(std::string_view name) const {
  if (const MilBinding* b = binding(name)) return r_.constant(*b);
  if (name == "name") return nullptr;
  return op_.attribute(name);
}

Value OpContext::value(std::string_view name) const {
  const std::string what = op_.name() + "." + std::string(name);
  if (const MilBinding* b = binding(name)) return r_.value(*b, what);
  if (name != "name") {
    if (const MilValue* v = op_.attribute(name)) return Value{v->type.dtype, materialize_constant(*v, r_.weights(), what)};
  }
  fail("missing required operand '" + std::string(name) + "'");
}

Tensor OpContext::tensor(std::string_view name) const { return value(name).data; }

std::optional<Tensor> OpContext::optional_tensor(std::string_view name) const {
  if (!has(name)) return std::nullopt;
  return tensor(name);
}

std::vector<Tensor> OpContext::tensors(std::string_view name) const {
  const coreml::MilArgument* a = op_.input(name);
  if (!a) fail("missing required operand '" + std::string(name) + "'");
  std::vector<Tensor> out;
  for (size_t i = 0; i < a->bindings.size(); ++i)
    out.push_back(r_.value(a->bindings[i], op_.name() + "." + std::string(name) + "[" + std::to_string(i) + "]").data);
  return out;
}

MilDType OpContext::dtype(std::string_view name) const {
  if (const MilValue* c = constant(name)) return c->type.dtype;
  return value(name).dtype;
}

std::vector<int64_t> OpContext::ints(std::string_view name) const {
  if (const MilValue* c = constant(name)) {
    if (c->kind == MilValue::Kind::kTensor && c->type.dtype != MilDType::kString &&
        (coreml::mil_dtype_is_int(c->type.dtype) || c->type.dtype == MilDType::kBool))
      return c->ints();
  }
  const Tensor t = tensor(name);
  std::vector<int64_t> r(static_cast<size_t>(t.numel()));
  const float* p = t.f32();
  for (size_t i = 0; i < r.size(); ++i) {
    if (!std::isfinite(p[i]) || p[i] != std::trunc(p[i]))
      fail("operand '" + std::string(name) + "' must hold integers, element " + std::to_string(i) + " is " +
           std::to_string(p[i]));
    r[i] = int64_t(p[i]);
  }
  return r;
}

std::optional<std::vector<int64_t>> OpContext::optional_ints(std::string_view name) const {
  if (!has(name)) return std::nullopt;
  return ints(name);
}

int64_t OpContext::int_scalar(std::string_view name) const {
  const auto v = ints(name);
  if (v.size() != 1) fail("operand '" + std::string(name) + "' must be a single integer, got " + std::to_string(v.size()) + " values");
  return v[0];
}

int64_t OpContext::int_or(std::string_view name, int64_t def) const { return has(name) ? int_scalar(name) : def; }

double OpContext::float_scalar(std::string_view name) const {
  const MilValue* c = constant(name);
  if (c && c->kind == MilValue::Kind::kTensor && c->type.dtype != MilDType::kString) {
    const auto v = c->floats();
    if (v.size() != 1) fail("operand '" + std::string(name) + "' must be a single number");
    return v[0];
  }
  const Tensor t = tensor(name);
  if (t.numel() != 1) fail("operand '" + std::string(name) + "' must be a single number, got shape " + shape_str(t.shape()));
  return t.f32()[0];
}

double OpContext::float_or(std::string_view name, double def) const { return has(name) ? float_scalar(name) : def; }

bool OpContext::bool_or(std::string_view name, bool def) const {
  if (!has(name)) return def;
  return float_scalar(name) != 0.0;
}

std::vector<bool> OpContext::bools_or(std::string_view name, size_t n, bool def) const {
  if (!has(name)) return std::vector<bool>(n, def);
  const auto v = ints(name);
  if (v.size() != n) fail("operand '" + std::string(name) + "' must have " + std::to_string(n) + " elements, got " + std::to_string(v.size()));
  std::vector<bool> r(n);
  for (size_t i = 0; i < n; ++i) r[i] = v[i] != 0;
  return r;
}

std::string OpContext::string_param(std::string_view name) const {
  const MilValue* c = constant(name);
  if (!c) {
    if (!has(name)) fail("missing required operand '" + std::string(name) + "'");
    fail("operand '" + std::string(name) + "' must be a constant string");
  }
  if (c->kind != MilValue::Kind::kTensor || c->type.dtype != MilDType::kString)
    fail("operand '" + std::string(name) + "' must be a string, got " + c->str());
  return c->scalar_string();
}

std::string OpContext::string_or(std::string_view name, const std::string& def) const {
  return has(name) ? string_param(name) : def;
}

Tensor OpContext::output_like(std::string_view name, const Shape& shape) {
  const coreml::MilArgument* a = op_.input(name);
  if (a && a->bindings.size() == 1) {
    Tensor t = r_.overwritable(a->bindings[0]);
    if (t.raw() && t.dtype() == DType::F32 && t.numel() == shape_numel(shape)) {
      in_place_ = true;
      return t.reshape(shape);
    }
  }
  return Tensor::empty(shape);
}

int OpContext::opset_version() const {
  const std::string& s = r_.opset();
  if (s.size() > 3 && s.compare(0, 3, "ios") == 0) {
    int v = 0;
    for (size_t i = 3; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return 0;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  }
  return 0;
}

// ---- registry ------------------------------------------------------------------------------------

const OpRegistry& op_registry() {
  static const OpRegistry r = [] {
    OpRegistry reg;
    register_elementwise_ops(reg);
    register_tensor_ops(reg);
    register_linalg_ops(reg);
    register_reduce_ops(reg);
    return reg;
  }();
  return r;
}

}  // namespace detail

// ---- the interpreter -------------------------------------------------------------------------------

namespace {
constexpr int32_t kKeep = std::numeric_limits<int32_t>::max();  // block outputs: never released
}

struct Interpreter::Impl final : detail::Resolver {
  const coreml::MilProgram& program;
  const coreml::MilFunction* fn = nullptr;
  std::shared_ptr<const coreml::WeightFiles> weights_;
  InterpreterOptions options;
  std::vector<size_t> wanted;                    // block outputs computed (indices)
  std::vector<const detail::OpFn*> handlers;     // per op; nullptr for const / constexpr ops and dead ops
  std::vector<std::vector<int32_t>> last_use;    // per op, per output: last consuming op (-1: none)
  std::vector<int32_t> input_last_use;
  // Run state.
  std::vector<Value> inputs;
  std::vector<std::vector<Value>> values;
  std::unordered_map<const void*, int> storage_refs;  // live values per storage (views share it)
  std::unordered_set<const void*> caller_storage;     // the caller's input tensors: never overwritten
  int32_t current_op = -1;
  std::map<std::string, OpProfile> prof;

  Impl(const coreml::MilProgram& p, const std::string& function_name, std::shared_ptr<const coreml::WeightFiles> w,
       InterpreterOptions o)
      : program(p), weights_(std::move(w)), options(o) {
    fn = program.function(function_name);
    if (!fn) {
      std::string names;
      for (const auto& f : program.functions) names += (names.empty() ? "" : ", ") + f.name;
      sdpal::fail(ErrorCode::kInvalidArgument,
                  program.source + ": no function '" + function_name + "' (the program has: " + names + ")");
    }
    prepare();
  }

  std::string loc(const MilOp& op) const { return program.source + ": " + op.where(); }

  // Indices of the block outputs to compute (options.outputs, or all).
  std::vector<size_t> wanted_outputs() const {
    const auto& outs = fn->block.outputs;
    std::vector<size_t> r;
    if (options.outputs.empty()) {
      for (size_t j = 0; j < outs.size(); ++j) r.push_back(j);
      return r;
    }
    for (const std::string& name : options.outputs) {
      auto it = std::find(outs.begin(), outs.end(), name);
      if (it == outs.end()) {
        std::string names;
        for (const auto& o : outs) names += (names.empty() ? "" : ", ") + o;
        sdpal::fail(ErrorCode::kInvalidArgument, program.source + ": function '" + fn->name + "' has no output '" +
                                                     name + "' (its outputs: " + names + ")");
      }
      r.push_back(size_t(it - outs.begin()));
    }
    return r;
  }

  // Ops that the wanted outputs depend on (walking back from them).
  std::vector<bool> live_ops(const std::vector<size_t>& wanted) const {
    const auto& ops = fn->block.ops;
    std::vector<bool> live(ops.size(), false);
    for (size_t j : wanted) {
      const MilVarRef& r = fn->block.output_refs.at(j);
      if (r.source == MilVarRef::Source::kOpOutput) live.at(size_t(r.op)) = true;
    }
    for (size_t i = ops.size(); i-- > 0;) {
      if (!live[i]) continue;
      for (const auto& arg : ops[i].inputs)
        for (const MilBinding& b : arg.bindings)
          if (!b.is_value() && b.ref.source == MilVarRef::Source::kOpOutput && b.ref.depth == 0 && b.ref.op >= 0)
            live.at(size_t(b.ref.op)) = true;
    }
    return live;
  }

  void prepare() {
    const auto& ops = fn->block.ops;
    const auto& reg = detail::op_registry();
    if (fn->block.output_refs.size() != fn->block.outputs.size())
      sdpal::fail(ErrorCode::kInvalidArgument, program.source + ": function '" + fn->name +
                                                   "' was not validated (call coreml::validate before interpreting)");
    wanted = wanted_outputs();
    const std::vector<bool> live = live_ops(wanted);
    handlers.assign(ops.size(), nullptr);
    last_use.assign(ops.size(), {});
    input_last_use.assign(fn->inputs.size(), -1);
    for (size_t i = 0; i < ops.size(); ++i) {
      const MilOp& op = ops[i];
      last_use[i].assign(op.outputs.size(), -1);
      if (!live[i]) continue;  // nothing wanted depends on it
      if (!op.blocks.empty())
        sdpal::fail(ErrorCode::kUnsupported, loc(op) + ": ops with nested blocks (control flow) are not supported by the MIL interpreter");
      if (op.type == "const") continue;
      if (detail::is_constexpr_op(op.type)) {
        if (!detail::is_supported_constexpr_op(op.type))
          sdpal::fail(ErrorCode::kUnsupported, loc(op) + ": op type '" + op.type + "' is not supported by the MIL interpreter");
        continue;
      }
      auto it = reg.find(op.type);
      if (it == reg.end())
        sdpal::fail(ErrorCode::kUnsupported, loc(op) + ": op type '" + op.type + "' is not supported by the MIL interpreter");
      handlers[i] = &it->second;
      for (const auto& out : op.outputs)
        if (!out.type.is_tensor())
          sdpal::fail(ErrorCode::kUnsupported, loc(op) + ": output '" + out.name + "' has type " + out.type.str() +
                                                   "; the MIL interpreter handles tensors only");
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      const MilOp& op = ops[i];
      if (!live[i]) continue;
      for (const auto& arg : op.inputs)
        for (const MilBinding& b : arg.bindings) {
          if (b.is_value()) continue;
          check_ref(b.ref, op, b.name);
          if (handlers[i] == nullptr) continue;  // const-like ops read constants only
          use(b.ref, int32_t(i));
        }
    }
    for (size_t j : wanted) use(fn->block.output_refs[j], kKeep);
  }

  void check_ref(const MilVarRef& r, const MilOp& op, const std::string& name) const {
    if (r.source == MilVarRef::Source::kUnresolved)
      sdpal::fail(ErrorCode::kInvalidArgument, loc(op) + ": variable '" + name +
                                                   "' is unresolved (call coreml::validate before interpreting)");
    if (r.source == MilVarRef::Source::kBlockInput || r.depth != 0)
      sdpal::fail(ErrorCode::kUnsupported, loc(op) + ": variable '" + name + "' comes from an enclosing block");
  }

  void use(const MilVarRef& r, int32_t at) {
    if (r.source == MilVarRef::Source::kFunctionInput) {
      int32_t& u = input_last_use.at(size_t(r.index));
      u = std::max(u, at);
    } else if (r.source == MilVarRef::Source::kOpOutput) {
      int32_t& u = last_use.at(size_t(r.op)).at(size_t(r.index));
      u = std::max(u, at);
    }
  }

  // ---- Resolver ----
  const coreml::WeightFiles* weights() const override { return weights_.get(); }
  const std::string& opset() const override { return fn->opset; }
  bool fp16_rounding() const override { return options.fp16_rounding; }

  Tensor overwritable(const MilBinding& b) const override {
    if (!options.reuse_storage) return {};
    if (b.is_value() || b.ref.source != MilVarRef::Source::kOpOutput || !handlers[size_t(b.ref.op)]) return {};
    if (last_use[size_t(b.ref.op)][size_t(b.ref.index)] != current_op) return {};
    int reads = 0;
    for (const auto& arg : fn->block.ops[size_t(current_op)].inputs)
      for (const MilBinding& o : arg.bindings)
        if (!o.is_value() && o.ref.source == b.ref.source && o.ref.op == b.ref.op && o.ref.index == b.ref.index) ++reads;
    if (reads != 1) return {};
    const Value& v = values[size_t(b.ref.op)][size_t(b.ref.index)];
    const void* p = v.data.raw();
    if (!p || caller_storage.count(p)) return {};
    auto it = storage_refs.find(p);
    if (it == storage_refs.end() || it->second != 1) return {};
    return v.data;
  }

  void hold(const Value& v) {
    if (v.data.raw()) ++storage_refs[v.data.raw()];
  }

  void drop(Value& v) {
    if (const void* p = v.data.raw()) {
      auto it = storage_refs.find(p);
      if (it != storage_refs.end() && --it->second <= 0) storage_refs.erase(it);
    }
    v = Value{};
  }

  const MilValue* constant(const MilBinding& b) const override { return coreml::const_value(fn->block, b); }

  Value value(const MilBinding& b, const std::string& what) const override {
    if (b.is_value()) return Value{b.value->type.dtype, detail::materialize_constant(*b.value, weights_.get(), what)};
    return value_of(b.ref, b.name, what);
  }

  Value value_of(const MilVarRef& r, const std::string& name, const std::string& what) const {
    if (r.source == MilVarRef::Source::kFunctionInput) {
      const Value& v = inputs.at(size_t(r.index));
      if (!v.data.defined() || v.data.raw() == nullptr)
        sdpal::fail(ErrorCode::kInternal, "MIL interpreter: input '" + name + "' read after release");
      return v;
    }
    if (r.source != MilVarRef::Source::kOpOutput)
      sdpal::fail(ErrorCode::kUnsupported, what + ": variable '" + name + "' is not a function input or op output");
    const MilOp& producer = fn->block.ops.at(size_t(r.op));
    if (producer.type == "const") {
      const MilValue* v = producer.attribute("val");
      if (!v) sdpal::fail(ErrorCode::kFormat, loc(producer) + ": const op without 'val'");
      return Value{v->type.dtype, detail::materialize_constant(*v, weights_.get(), name)};
    }
    if (detail::is_constexpr_op(producer.type)) {
      Value v = detail::eval_constexpr(fn->block, producer, weights_.get());
      // Dequantized values are computed in fp32; table, cast and sparse values are exact already.
      if (producer.type == "constexpr_affine_dequantize" || producer.type == "constexpr_blockwise_shift_scale")
        finish(v, v.dtype);
      return v;
    }
    const Value& v = values.at(size_t(r.op)).at(size_t(r.index));
    if (v.data.raw() == nullptr)
      sdpal::fail(ErrorCode::kInternal, "MIL interpreter: '" + name + "' read before it was computed or after release");
    return v;
  }

  void bind_inputs(const std::map<std::string, Tensor>& given) {
    inputs.assign(fn->inputs.size(), Value{});
    for (const auto& [name, t] : given) {
      bool known = false;
      for (const auto& in : fn->inputs) known = known || in.name == name;
      if (!known) {
        std::string names;
        for (const auto& in : fn->inputs) names += (names.empty() ? "" : ", ") + in.name;
        sdpal::fail(ErrorCode::kInvalidArgument, program.source + ": function '" + fn->name + "' has no input '" + name +
                                                     "' (its inputs: " + names + ")");
      }
    }
    for (size_t i = 0; i < fn->inputs.size(); ++i) {
      const auto& decl = fn->inputs[i];
      auto it = given.find(decl.name);
      if (it == given.end())
        sdpal::fail(ErrorCode::kInvalidArgument, program.source + ": missing input '" + decl.name + "' " + decl.type.str());
      const Tensor& t = it->second;
      if (!decl.type.is_tensor())
        sdpal::fail(ErrorCode::kUnsupported, program.source + ": input '" + decl.name + "' has type " + decl.type.str());
      if (t.dtype() != DType::F32 || !t.defined())
        sdpal::fail(ErrorCode::kInvalidArgument, program.source + ": input '" + decl.name + "' must be an F32 tensor");
      if (!shape_fits(decl.type, t.shape()))
        sdpal::fail(ErrorCode::kInvalidArgument, program.source + ": input '" + decl.name + "' has shape " +
                                                     shape_str(t.shape()) + ", the function declares " + decl.type.str());
      Value v{decl.type.dtype, t};
      if (needs_rounding(v.dtype) || !detail::is_float_dtype(v.dtype)) {
        v.data = t.clone();
        finish(v, v.dtype);
      }
      caller_storage.insert(t.raw());
      hold(v);
      inputs[i] = std::move(v);
    }
  }

  static bool shape_fits(const coreml::MilType& type, const Shape& s) {
    if (type.unknown_rank) return true;
    if (type.shape.size() != s.size()) return false;
    for (size_t d = 0; d < s.size(); ++d)
      if (type.shape[d] >= 0 && type.shape[d] != s[d]) return false;
    return true;
  }

  bool needs_rounding(MilDType t) const {
    return options.fp16_rounding && (t == MilDType::kFp16 || t == MilDType::kBf16);
  }

  // Makes `v.data` hold values representable in `t` (owned storage expected when changed).
  void finish(Value& v, MilDType t) const {
    float* p = v.data.f32();
    const int64_t n = v.data.numel();
    if (t == MilDType::kFp16) {
      if (options.fp16_rounding) detail::round_to_fp16(p, n);
    } else if (t == MilDType::kBf16) {
      if (options.fp16_rounding) detail::round_to_bf16(p, n);
    } else if (!detail::is_float_dtype(t)) {
      detail::convert_values(p, n, t);
    }
  }

  void run_op(size_t i) {
    const MilOp& op = fn->block.ops[i];
    detail::OpContext ctx(op, *this);
    std::vector<Tensor> outs;
    try {
      outs = (*handlers[i])(ctx);
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.find(op.where()) != std::string::npos) throw;
      throw Error(e.code(), loc(op) + ": " + msg);
    }
    if (outs.size() != op.outputs.size())
      sdpal::fail(ErrorCode::kFormat, loc(op) + ": produced " + std::to_string(outs.size()) + " outputs, the op declares " +
                                          std::to_string(op.outputs.size()));
    // Storage of runtime operands: an output that shares it (a view: reshape, squeeze, ...) of an
    // operand of its own type holds finished values already.
    std::vector<std::pair<const void*, MilDType>> operand_storage;
    for (const auto& arg : op.inputs)
      for (const MilBinding& b : arg.bindings) {
        if (b.is_value()) continue;
        const Value* v = nullptr;
        if (b.ref.source == MilVarRef::Source::kFunctionInput) v = &inputs[size_t(b.ref.index)];
        else if (b.ref.source == MilVarRef::Source::kOpOutput && handlers[size_t(b.ref.op)])
          v = &values[size_t(b.ref.op)][size_t(b.ref.index)];
        if (v && v->data.raw()) operand_storage.emplace_back(v->data.raw(), v->dtype);
      }
    for (size_t k = 0; k < outs.size(); ++k) {
      const auto& decl = op.outputs[k];
      Tensor& t = outs[k];
      if (!shape_fits(decl.type, t.shape())) {
        if (!decl.type.unknown_rank && t.numel() == 1 && decl.type.numel() == 1) {
          t = t.reshape(decl.type.shape);  // [1] vs scalar
        } else {
          sdpal::fail(ErrorCode::kFormat, loc(op) + ": computed " + shape_str(t.shape()) + " for output '" + decl.name +
                                              "', which is declared " + decl.type.str());
        }
      }
      Value v{decl.type.dtype, t};
      const bool is_view = !ctx.wrote_in_place() &&
                           std::find(operand_storage.begin(), operand_storage.end(),
                                     std::make_pair(static_cast<const void*>(t.raw()), decl.type.dtype)) != operand_storage.end();
      if (!is_view && !(ctx.rounded() && decl.type.dtype == MilDType::kFp16)) finish(v, decl.type.dtype);
      outs[k] = v.data;
      hold(v);
      values[i][k] = std::move(v);
    }
    if (options.observer) options.observer(op, outs);
  }

  void release_after(size_t i) {
    const MilOp& op = fn->block.ops[i];
    for (const auto& arg : op.inputs)
      for (const MilBinding& b : arg.bindings) {
        if (b.is_value()) continue;
        if (b.ref.source == MilVarRef::Source::kFunctionInput) {
          if (input_last_use[size_t(b.ref.index)] == int32_t(i)) drop(inputs[size_t(b.ref.index)]);
        } else if (b.ref.source == MilVarRef::Source::kOpOutput) {
          if (last_use[size_t(b.ref.op)][size_t(b.ref.index)] == int32_t(i))
            drop(values[size_t(b.ref.op)][size_t(b.ref.index)]);
        }
      }
    for (size_t k = 0; k < op.outputs.size(); ++k)
      if (last_use[i][k] < 0) drop(values[i][k]);  // never read
  }

  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& given) {
    struct Cleanup {
      Impl* self;
      ~Cleanup() {
        self->inputs.clear();
        self->values.clear();
        self->storage_refs.clear();
        self->caller_storage.clear();
        self->current_op = -1;
      }
    } cleanup{this};
    bind_inputs(given);
    const auto& ops = fn->block.ops;
    values.assign(ops.size(), {});
    for (size_t i = 0; i < ops.size(); ++i) values[i].resize(ops[i].outputs.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!handlers[i]) continue;
      const auto t0 = std::chrono::steady_clock::now();
      current_op = int32_t(i);
      run_op(i);
      release_after(i);
      if (options.profile) {
        OpProfile& p = prof[ops[i].type];
        p.type = ops[i].type;
        p.count += 1;
        p.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
    }
    std::map<std::string, Tensor> out;
    for (size_t j : wanted) {
      const std::string& name = fn->block.outputs[j];
      Value v = value_of(fn->block.output_refs[j], name, program.source + ": output '" + name + "'");
      out[name] = v.data;
    }
    return out;
  }
};

Interpreter::Interpreter(const coreml::MilProgram& program, std::string function_name,
                         std::shared_ptr<const coreml::WeightFiles> weights, InterpreterOptions options)
    : impl_(std::make_unique<Impl>(program, function_name, std::move(weights), options)) {}

Interpreter::Interpreter(const coreml::CoreMLModel& model, InterpreterOptions options)
    : impl_(std::make_unique<Impl>(model.program, model.program.main().name, model.weights, options)) {}

Interpreter::~Interpreter() = default;
Interpreter::Interpreter(Interpreter&&) noexcept = default;
Interpreter& Interpreter::operator=(Interpreter&&) noexcept = default;

const coreml::MilFunction& Interpreter::function() const { return *impl_->fn; }

std::map<std::string, Tensor> Interpreter::run(const std::map<std::string, Tensor>& inputs) { return impl_->run(inputs); }

std::vector<OpProfile> Interpreter::profile() const {
  std::vector<OpProfile> r;
  for (const auto& [k, v] : impl_->prof) r.push_back(v);
  std::sort(r.begin(), r.end(), [](const OpProfile& a, const OpProfile& b) { return a.seconds > b.seconds; });
  return r;
}

std::vector<std::string> Interpreter::supported_ops() {
  std::vector<std::string> r;
  for (const auto& [k, v] : detail::op_registry()) r.push_back(k);
  std::sort(r.begin(), r.end());
  return r;
}

bool Interpreter::supports(std::string_view op_type) {
  if (op_type == "const") return true;
  if (detail::is_constexpr_op(op_type)) return detail::is_supported_constexpr_op(op_type);
  return detail::op_registry().count(std::string(op_type)) != 0;
}

}  // namespace sdpal::mil
