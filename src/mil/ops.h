// The MIL interpreter's op implementations and the context they read operands through.
// Internal to src/mil: each ops_*.cpp registers its op types in the registry.
//
// Values are fp32 tensors whatever their MIL element type (ints and bools are stored exactly as
// floats up to 2^24); the interpreter rounds fp16-typed outputs after each op. Ops read their
// operands through OpContext, which resolves variables, inline values, `const` ops and constexpr
// ops (decoded on use, not cached).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "io/coreml/mil_ast.h"
#include "io/coreml/mil_consts.h"

namespace sdpal::mil::detail {

using coreml::MilDType;

// A runtime value: the data (F32, the value's shape; a scalar has rank 0) and its MIL element type.
struct Value {
  MilDType dtype = MilDType::kFp32;
  Tensor data;
};

// What an op's operand binding resolves to. Implemented by the interpreter.
class Resolver {
 public:
  virtual ~Resolver() = default;
  // The constant a binding names (an inline value or a `const` op's val), or nullptr.
  virtual const coreml::MilValue* constant(const coreml::MilBinding& b) const = 0;
  // The value of a binding: a runtime value, or a constant / constexpr result materialized now.
  virtual Value value(const coreml::MilBinding& b, const std::string& what) const = 0;
  // The program's weight files (may be null).
  virtual const coreml::WeightFiles* weights() const = 0;
  // The function's opset ("ios16", "ios18", ...); some ops changed meaning between opsets.
  virtual const std::string& opset() const = 0;
  // Whether fp16-typed results are rounded to fp16 (InterpreterOptions::fp16_rounding).
  virtual bool fp16_rounding() const = 0;
  // The runtime value of `b` when the running op may overwrite it: the op is its last reader, reads
  // it once, and no other live value or the caller shares its storage. Else an empty tensor.
  virtual Tensor overwritable(const coreml::MilBinding& b) const = 0;
};

class OpContext {
 public:
  OpContext(const coreml::MilOp& op, const Resolver& r) : op_(op), r_(r) {}

  const coreml::MilOp& op() const { return op_; }
  std::string where() const { return op_.where(); }
  // Throws Error(code) "<op where>: <msg>".
  [[noreturn]] void fail(const std::string& msg, ErrorCode code = ErrorCode::kFormat) const;

  // Operand `name` given (as an input, or an attribute for iOS16 constexpr-style operands).
  bool has(std::string_view name) const;
  // Tensor operand (required): its data as F32.
  Tensor tensor(std::string_view name) const;
  Value value(std::string_view name) const;
  std::optional<Tensor> optional_tensor(std::string_view name) const;
  // All bindings of a tuple operand (`values = (a, b)`).
  std::vector<Tensor> tensors(std::string_view name) const;
  MilDType dtype(std::string_view name) const;

  // Parameters, from constants or runtime values. The *_or forms return `def` when absent.
  std::vector<int64_t> ints(std::string_view name) const;
  std::optional<std::vector<int64_t>> optional_ints(std::string_view name) const;
  int64_t int_scalar(std::string_view name) const;
  int64_t int_or(std::string_view name, int64_t def) const;
  double float_scalar(std::string_view name) const;
  double float_or(std::string_view name, double def) const;
  bool bool_or(std::string_view name, bool def) const;
  std::vector<bool> bools_or(std::string_view name, size_t n, bool def) const;
  std::string string_param(std::string_view name) const;
  std::string string_or(std::string_view name, const std::string& def) const;

  size_t num_outputs() const { return op_.outputs.size(); }
  const coreml::MilType& out_type(size_t i = 0) const { return op_.outputs.at(i).type; }
  MilDType out_dtype(size_t i = 0) const { return op_.outputs.at(i).type.dtype; }

  // The single binding of operand `name`, or nullptr (attribute-only operands return nullptr).
  const coreml::MilBinding* binding(std::string_view name) const;
  // Operand as a constant value (input binding to a constant, or attribute), nullptr otherwise.
  const coreml::MilValue* constant(std::string_view name) const;
  const Resolver& resolver() const { return r_; }
  // Opset version number: 15 for "ios15" ... 18 for "ios18"; 0 when unknown.
  int opset_version() const;

  // Rounding fused into an op: when round_output() is true (one fp16 output, rounding on), an op
  // may round its result to fp16 as it writes it (round_span_to_fp16) and call set_rounded(), so
  // the interpreter skips its separate rounding pass.
  bool round_output() const {
    return r_.fp16_rounding() && op_.outputs.size() == 1 && op_.outputs[0].type.dtype == MilDType::kFp16;
  }
  void set_rounded() { rounded_ = true; }
  bool rounded() const { return rounded_; }

  // Storage for a result of `shape`: operand `name`'s own storage when the op may overwrite it
  // (see Resolver::overwritable; element-wise ops then compute in place), else a new tensor.
  Tensor output_like(std::string_view name, const Shape& shape);
  bool wrote_in_place() const { return in_place_; }

 private:
  const coreml::MilOp& op_;
  const Resolver& r_;
  bool rounded_ = false;
  bool in_place_ = false;
};

using OpFn = std::function<std::vector<Tensor>(OpContext&)>;
using OpRegistry = std::unordered_map<std::string, OpFn>;

// All runtime op types (not const / constexpr_*).
const OpRegistry& op_registry();
void register_elementwise_ops(OpRegistry& r);
void register_tensor_ops(OpRegistry& r);
void register_linalg_ops(OpRegistry& r);
void register_reduce_ops(OpRegistry& r);

// Constants: a MIL value (immediate or BLOBFILE) as F32 data of its shape. Error(kFormat) for
// strings, lists and the like; `what` names the variable.
Tensor materialize_constant(const coreml::MilValue& v, const coreml::WeightFiles* weights, const std::string& what);
// Compile-time ops the interpreter evaluates on use.
bool is_constexpr_op(std::string_view type);
bool is_supported_constexpr_op(std::string_view type);
Value eval_constexpr(const coreml::MilBlock& block, const coreml::MilOp& op, const coreml::WeightFiles* weights);

// Element-wise helpers shared by the op files.
template <typename F>
void parallel_map(const float* x, float* y, int64_t n, F f) {
  parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
      },
      1 << 16);
}

// Integer dtype helpers.
bool is_float_dtype(MilDType t);
// Name used by `cast` (`int32`, `fp16`, ...) -> MilDType; nullopt if unknown.
std::optional<MilDType> cast_dtype_from_name(const std::string& name);
// Converts x (any numeric values) to what storing it in `t` gives: truncation toward zero and
// wrap-around for integers, 0/1 for bool, rounding for fp16/bf16 is left to the interpreter.
void convert_values(float* x, int64_t n, MilDType t);

}  // namespace sdpal::mil::detail
