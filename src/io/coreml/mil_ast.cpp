#include "io/coreml/mil_ast.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

#include "core/error.h"

namespace sdpal::coreml {

namespace {

struct DTypeInfo {
  MilDType t;
  const char* name;
  int bits;
};

constexpr DTypeInfo kDTypes[] = {
    {MilDType::kBool, "bool", 8},        {MilDType::kString, "string", 0},
    {MilDType::kFp8E4M3FN, "fp8e4m3fn", 8}, {MilDType::kFp8E5M2, "fp8e5m2", 8},
    {MilDType::kFp16, "fp16", 16},       {MilDType::kBf16, "bf16", 16},
    {MilDType::kFp32, "fp32", 32},       {MilDType::kFp64, "fp64", 64},
    {MilDType::kInt4, "int4", 4},        {MilDType::kInt8, "int8", 8},
    {MilDType::kInt16, "int16", 16},     {MilDType::kInt32, "int32", 32},
    {MilDType::kInt64, "int64", 64},     {MilDType::kUInt1, "uint1", 1},
    {MilDType::kUInt2, "uint2", 2},      {MilDType::kUInt3, "uint3", 3},
    {MilDType::kUInt4, "uint4", 4},      {MilDType::kUInt6, "uint6", 6},
    {MilDType::kUInt8, "uint8", 8},      {MilDType::kUInt16, "uint16", 16},
    {MilDType::kUInt32, "uint32", 32},   {MilDType::kUInt64, "uint64", 64},
};

const DTypeInfo& info(MilDType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d;
  fail(ErrorCode::kInternal, "unknown MIL dtype");
}

float fp8_e4m3fn_to_f32(uint8_t b) {
  const float sign = (b & 0x80) ? -1.0f : 1.0f;
  const int e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(float(m), -9);
  return sign * std::ldexp(1.0f + float(m) / 8.0f, e - 7);
}

// Element i of a packed little-endian buffer as an integer (sign-extended for signed types).
int64_t int_element(const std::vector<uint8_t>& d, MilDType t, int64_t i) {
  const int bits = mil_dtype_bits(t);
  if (bits < 8) {
    const uint64_t bit = uint64_t(i) * uint64_t(bits);
    uint32_t w = d[bit >> 3];
    if ((bit >> 3) + 1 < d.size()) w |= uint32_t(d[(bit >> 3) + 1]) << 8;
    int64_t v = (w >> (bit & 7)) & ((1u << bits) - 1);
    if (mil_dtype_is_signed(t) && (v >> (bits - 1))) v -= int64_t(1) << bits;
    return v;
  }
  const size_t nb = size_t(bits / 8);
  uint64_t u = 0;
  std::memcpy(&u, d.data() + size_t(i) * nb, nb);  // little-endian host
  if (mil_dtype_is_signed(t) && nb < 8 && (u >> (bits - 1) & 1)) u |= ~uint64_t(0) << bits;
  return int64_t(u);
}

double float_element(const std::vector<uint8_t>& d, MilDType t, int64_t i) {
  const size_t o = size_t(i);
  switch (t) {
    case MilDType::kFp16: { uint16_t h; std::memcpy(&h, d.data() + 2 * o, 2); return f16_to_f32(h); }
    case MilDType::kBf16: { uint16_t h; std::memcpy(&h, d.data() + 2 * o, 2); return bf16_to_f32(h); }
    case MilDType::kFp32: { float f; std::memcpy(&f, d.data() + 4 * o, 4); return f; }
    case MilDType::kFp64: { double f; std::memcpy(&f, d.data() + 8 * o, 8); return f; }
    case MilDType::kFp8E5M2: return f16_to_f32(uint16_t(d[o] << 8));
    case MilDType::kFp8E4M3FN: return fp8_e4m3fn_to_f32(d[o]);
    case MilDType::kUInt64: return double(uint64_t(int_element(d, t, i)));
    default: return double(int_element(d, t, i));
  }
}

void require_immediate(const MilValue& v, bool strings, const char* what) {
  if (v.kind != MilValue::Kind::kTensor || (v.type.dtype == MilDType::kString) != strings)
    fail(ErrorCode::kFormat, std::string("MIL value ") + v.str() + " is not " + what);
}

}  // namespace

const char* mil_dtype_name(MilDType t) { return info(t).name; }

std::optional<MilDType> mil_dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.t;
  return std::nullopt;
}

int mil_dtype_bits(MilDType t) { return info(t).bits; }

bool mil_dtype_is_float(MilDType t) {
  return t == MilDType::kFp16 || t == MilDType::kBf16 || t == MilDType::kFp32 || t == MilDType::kFp64 ||
         t == MilDType::kFp8E4M3FN || t == MilDType::kFp8E5M2;
}

bool mil_dtype_is_int(MilDType t) { return t != MilDType::kBool && t != MilDType::kString && !mil_dtype_is_float(t); }

bool mil_dtype_is_signed(MilDType t) {
  return t == MilDType::kInt4 || t == MilDType::kInt8 || t == MilDType::kInt16 || t == MilDType::kInt32 ||
         t == MilDType::kInt64;
}

std::optional<DType> mil_dtype_to_dtype(MilDType t) {
  switch (t) {
    case MilDType::kFp16: return DType::F16;
    case MilDType::kBf16: return DType::BF16;
    case MilDType::kFp32: return DType::F32;
    case MilDType::kFp64: return DType::F64;
    case MilDType::kInt8: return DType::I8;
    case MilDType::kInt16: return DType::I16;
    case MilDType::kInt32: return DType::I32;
    case MilDType::kInt64: return DType::I64;
    case MilDType::kUInt8: return DType::U8;
    case MilDType::kBool: return DType::BOOL;
    default: return std::nullopt;
  }
}

uint64_t mil_packed_nbytes(MilDType t, uint64_t n) {
  const uint64_t bits = uint64_t(mil_dtype_bits(t));
  if (n > (uint64_t(1) << 58)) fail(ErrorCode::kFormat, "MIL tensor of " + std::to_string(n) + " elements is too large");
  return (n * bits + 7) / 8;
}

// ---- MilType -------------------------------------------------------------------------------

bool MilType::has_static_shape() const {
  if (kind != Kind::kTensor || unknown_rank) return false;
  return std::none_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; });
}

int64_t MilType::numel() const {
  if (!has_static_shape()) return -1;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d != 0 && n > (int64_t(1) << 58) / d) return -1;
    n *= d;
  }
  return n;
}

std::string MilType::str() const {
  auto join = [](const std::vector<MilType>& ts) {
    std::string s;
    for (size_t i = 0; i < ts.size(); ++i) s += (i ? ", " : "") + ts[i].str();
    return s;
  };
  switch (kind) {
    case Kind::kTensor: {
      std::string s = std::string("tensor<") + mil_dtype_name(dtype) + ", ";
      if (unknown_rank) return s + "*>";
      s += "[";
      for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + (shape[i] < 0 ? std::string("?") : std::to_string(shape[i]));
      return s + "]>";
    }
    case Kind::kList:
      return "list<" + join(elements) + ", " + (list_length < 0 ? std::string("?") : std::to_string(list_length)) + ">";
    case Kind::kTuple: return "tuple<" + join(elements) + ">";
    case Kind::kDict: return "dict<" + join(elements) + ">";
    case Kind::kState: return "state<" + join(elements) + ">";
  }
  return "?";
}

bool MilType::operator==(const MilType& o) const {
  return kind == o.kind && dtype == o.dtype && shape == o.shape && unknown_rank == o.unknown_rank &&
         elements == o.elements && list_length == o.list_length;
}

// ---- MilValue ------------------------------------------------------------------------------

int64_t MilValue::numel() const {
  if (kind != Kind::kTensor) return 0;
  if (type.dtype == MilDType::kString) return int64_t(strings.size());
  const int bits = mil_dtype_bits(type.dtype);
  const int64_t n = type.numel();
  if (n >= 0) return n;
  return int64_t(data.size()) * 8 / bits;
}

std::vector<int64_t> MilValue::ints() const {
  require_immediate(*this, false, "an integer tensor");
  if (!mil_dtype_is_int(type.dtype) && type.dtype != MilDType::kBool)
    fail(ErrorCode::kFormat, "MIL value " + str() + " is not an integer tensor");
  std::vector<int64_t> r(static_cast<size_t>(numel()));
  for (size_t i = 0; i < r.size(); ++i) r[i] = int_element(data, type.dtype, int64_t(i));
  return r;
}

std::vector<double> MilValue::floats() const {
  require_immediate(*this, false, "a numeric tensor");
  std::vector<double> r(static_cast<size_t>(numel()));
  for (size_t i = 0; i < r.size(); ++i) r[i] = float_element(data, type.dtype, int64_t(i));
  return r;
}

int64_t MilValue::scalar_int() const {
  const auto v = ints();
  if (v.size() != 1) fail(ErrorCode::kFormat, "MIL value " + str() + " is not a single integer");
  return v[0];
}

double MilValue::scalar_float() const {
  const auto v = floats();
  if (v.size() != 1) fail(ErrorCode::kFormat, "MIL value " + str() + " is not a single number");
  return v[0];
}

bool MilValue::scalar_bool() const {
  require_immediate(*this, false, "a bool");
  if (type.dtype != MilDType::kBool || data.size() != 1) fail(ErrorCode::kFormat, "MIL value " + str() + " is not a bool");
  return data[0] != 0;
}

const std::string& MilValue::scalar_string() const {
  require_immediate(*this, true, "a string");
  if (strings.size() != 1) fail(ErrorCode::kFormat, "MIL value " + str() + " is not a single string");
  return strings[0];
}

std::string MilValue::str() const {
  switch (kind) {
    case Kind::kBlob: return type.str() + "(BLOBFILE(" + blob.path + ", " + std::to_string(blob.offset) + "))";
    case Kind::kList: return "list of " + std::to_string(items.size());
    case Kind::kTuple: return "tuple of " + std::to_string(items.size());
    case Kind::kDict: return "dict of " + std::to_string(items.size() / 2);
    case Kind::kTensor: break;
  }
  std::string s = type.str() + "(";
  const int64_t n = numel();
  const int64_t shown = std::min<int64_t>(n, 8);
  if (type.dtype == MilDType::kString) {
    for (int64_t i = 0; i < shown && size_t(i) < strings.size(); ++i) s += (i ? ", \"" : "\"") + strings[size_t(i)] + "\"";
  } else if (mil_packed_nbytes(type.dtype, uint64_t(n)) <= data.size()) {
    for (int64_t i = 0; i < shown; ++i) {
      if (i) s += ", ";
      if (mil_dtype_is_float(type.dtype)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", float_element(data, type.dtype, i));
        s += buf;
      } else {
        s += std::to_string(int_element(data, type.dtype, i));
      }
    }
  }
  if (n > shown) s += ", ...";
  return s + ")";
}

void check_value(const MilValue& v, const std::string& where) {
  switch (v.kind) {
    case MilValue::Kind::kTensor: {
      const int64_t n = v.type.numel();
      if (!v.type.is_tensor() || n < 0)
        fail(ErrorCode::kFormat, where + ": immediate value of type " + v.type.str() + " needs a static tensor shape");
      if (v.type.dtype == MilDType::kString) {
        if (int64_t(v.strings.size()) != n || !v.data.empty())
          fail(ErrorCode::kFormat, where + ": " + std::to_string(v.strings.size()) + " strings for " + v.type.str());
      } else if (v.data.size() != mil_packed_nbytes(v.type.dtype, uint64_t(n)) || !v.strings.empty()) {
        fail(ErrorCode::kFormat, where + ": " + std::to_string(v.data.size()) + " bytes of data for " + v.type.str() +
                                     " (expected " + std::to_string(mil_packed_nbytes(v.type.dtype, uint64_t(n))) + ")");
      }
      return;
    }
    case MilValue::Kind::kBlob:
      if (v.type.numel() < 0 || v.type.dtype == MilDType::kString)
        fail(ErrorCode::kFormat, where + ": weight-file value needs a static numeric tensor type, not " + v.type.str());
      return;
    case MilValue::Kind::kDict:
      if (v.items.size() % 2) fail(ErrorCode::kFormat, where + ": dict with a key and no value");
      [[fallthrough]];
    case MilValue::Kind::kList:
    case MilValue::Kind::kTuple:
      for (const auto& item : v.items) check_value(item, where);
      return;
  }
}

// ---- ops, functions, programs --------------------------------------------------------------

const MilArgument* MilOp::input(std::string_view n) const {
  for (const auto& a : inputs)
    if (a.name == n) return &a;
  return nullptr;
}

const MilValue* MilOp::attribute(std::string_view n) const {
  for (const auto& a : attributes)
    if (a.name == n) return &a.value;
  return nullptr;
}

std::string MilOp::name() const {
  const MilValue* v = attribute("name");
  if (v && v->kind == MilValue::Kind::kTensor && v->type.dtype == MilDType::kString && v->strings.size() == 1)
    return v->strings[0];
  return outputs.empty() ? std::string() : outputs[0].name;
}

std::string MilOp::where() const {
  std::string s = "op '" + name() + "' (" + type + ")";
  if (loc.line > 0) s += " at " + std::to_string(loc.line) + ":" + std::to_string(loc.col);
  return s;
}

const MilFunction* MilProgram::function(std::string_view n) const {
  for (const auto& f : functions)
    if (f.name == n) return &f;
  return nullptr;
}

const MilFunction& MilProgram::main() const {
  if (const MilFunction* f = function("main")) return *f;
  if (functions.size() == 1) return functions[0];
  fail(ErrorCode::kFormat, source + ": MIL program has no function 'main' (" + std::to_string(functions.size()) +
                               " functions)");
}

std::vector<std::pair<std::string, int>> op_type_counts(const MilFunction& f) {
  std::map<std::string, int> m;
  for (const auto& op : f.block.ops) ++m[op.type];
  std::vector<std::pair<std::string, int>> r(m.begin(), m.end());
  std::stable_sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return r;
}

// ---- validate ------------------------------------------------------------------------------

namespace {

struct Def {
  MilVarRef::Source source;
  int32_t op;
  int32_t index;
  int32_t level;  // block nesting level of the definition
};

bool types_compatible(const MilType& declared, const MilType& value) {
  if (declared.kind != value.kind || declared.dtype != value.dtype || declared.elements.size() != value.elements.size())
    return false;
  if (declared.kind != MilType::Kind::kTensor) return declared == value;
  if (declared.unknown_rank || value.unknown_rank) return true;
  if (declared.shape.size() != value.shape.size()) return false;
  for (size_t i = 0; i < declared.shape.size(); ++i)
    if (declared.shape[i] >= 0 && value.shape[i] >= 0 && declared.shape[i] != value.shape[i]) return false;
  return true;
}

class Validator {
 public:
  Validator(const std::string& source, const MilFunction& f) : source_(source), fn_(f.name) {}

  void define(const std::string& name, Def d, const MilOp* op, SourceLoc loc) {
    if (name.empty()) error(op, loc, "empty variable name");
    if (!scope_.emplace(name, d).second) error(op, loc, "variable '" + name + "' is redefined");
  }

  MilVarRef resolve(const std::string& name, int32_t level, const MilOp* op, SourceLoc loc) {
    auto it = scope_.find(name);
    if (it == scope_.end()) error(op, loc, "undefined variable '" + name + "'");
    const Def& d = it->second;
    MilVarRef r;
    r.source = d.source;
    r.op = d.op;
    r.index = d.index;
    r.depth = level - d.level;
    return r;
  }

  void block(MilBlock& b, int32_t level, const MilOp* parent) {
    if (level > 64) error(parent, parent ? parent->loc : SourceLoc{}, "blocks nested too deeply");
    std::vector<std::string> local;  // names to drop when a nested block ends
    for (size_t i = 0; i < b.inputs.size(); ++i) {
      define(b.inputs[i].name, {MilVarRef::Source::kBlockInput, -1, int32_t(i), level}, parent, parent ? parent->loc : SourceLoc{});
      local.push_back(b.inputs[i].name);
    }
    for (size_t i = 0; i < b.ops.size(); ++i) {
      MilOp& op = b.ops[i];
      for (auto& arg : op.inputs)
        for (auto& bind : arg.bindings) {
          if (bind.is_value()) continue;
          bind.ref = resolve(bind.name, level, &op, op.loc);
        }
      for (auto& nested : op.blocks) block(nested, level + 1, &op);
      if (op.type == "const") check_const(op);
      for (size_t k = 0; k < op.outputs.size(); ++k) {
        define(op.outputs[k].name, {MilVarRef::Source::kOpOutput, int32_t(i), int32_t(k), level}, &op, op.loc);
        local.push_back(op.outputs[k].name);
      }
    }
    b.output_refs.clear();
    for (const auto& o : b.outputs) b.output_refs.push_back(resolve(o, level, parent, parent ? parent->loc : SourceLoc{}));
    if (level > 0)
      for (const auto& n : local) scope_.erase(n);
  }

  void check_const(const MilOp& op) {
    const MilValue* val = op.attribute("val");
    if (op.outputs.size() != 1) error(&op, op.loc, "const must have exactly one output");
    if (!val) error(&op, op.loc, "const has no 'val' attribute");
    if (!types_compatible(op.outputs[0].type, val->type))
      error(&op, op.loc, "const output type " + op.outputs[0].type.str() + " does not match its value " + val->type.str());
  }

  [[noreturn]] void error(const MilOp* op, SourceLoc loc, const std::string& msg) {
    std::string s = source_;
    if (loc.line > 0) s += ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col);
    s += ": function '" + fn_ + "'";
    if (op) s += ", " + op->where();
    fail(ErrorCode::kFormat, s + ": " + msg);
  }

  std::unordered_map<std::string, Def> scope_;

 private:
  const std::string& source_;
  std::string fn_;
};

}  // namespace

void validate(MilProgram& program) {
  std::unordered_map<std::string, int> names;
  for (auto& f : program.functions) {
    if (++names[f.name] > 1) fail(ErrorCode::kFormat, program.source + ": function '" + f.name + "' is defined twice");
    Validator v(program.source, f);
    for (size_t i = 0; i < f.inputs.size(); ++i)
      v.define(f.inputs[i].name, {MilVarRef::Source::kFunctionInput, -1, int32_t(i), 0}, nullptr, f.loc);
    v.block(f.block, 0, nullptr);
  }
}

}  // namespace sdpal::coreml
