// The MIL program AST: what Core ML's textual `model.mil` (compiled .mlmodelc) and the protobuf
// `model.mlmodel` (.mlpackage) both describe. Both readers produce this one form, so a single
// interpreter walks either: functions hold a block of ops in execution order; each op has typed
// outputs, named inputs bound to variables or inline values, and attributes (`name`, `val`, ...).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace sdpal::coreml {

// Element types (MIL.proto DataType); the text spelling is mil_dtype_name().
enum class MilDType : uint8_t {
  kBool, kString,
  kFp8E4M3FN, kFp8E5M2, kFp16, kBf16, kFp32, kFp64,
  kInt4, kInt8, kInt16, kInt32, kInt64,
  kUInt1, kUInt2, kUInt3, kUInt4, kUInt6, kUInt8, kUInt16, kUInt32, kUInt64,
};

const char* mil_dtype_name(MilDType t);                             // "fp16", "uint6", "string"
std::optional<MilDType> mil_dtype_from_name(std::string_view name);
int mil_dtype_bits(MilDType t);    // bits per stored element; bool 8; string 0
bool mil_dtype_is_float(MilDType t);
bool mil_dtype_is_int(MilDType t);  // signed or unsigned integer (not bool)
bool mil_dtype_is_signed(MilDType t);
// The sdpal DType with the same in-memory encoding, if there is one (F16, BF16, F32, F64, I8,
// I16, I32, I64, U8, BOOL).
std::optional<DType> mil_dtype_to_dtype(MilDType t);
// Bytes taken by n packed elements (sub-byte types packed LSB first, rounded up to a byte).
uint64_t mil_packed_nbytes(MilDType t, uint64_t n);

constexpr int64_t kUnknownDim = -1;

struct MilType {
  enum class Kind : uint8_t { kTensor, kList, kTuple, kDict, kState };
  Kind kind = Kind::kTensor;
  MilDType dtype = MilDType::kFp32;  // kTensor
  Shape shape;                       // kTensor: kUnknownDim where not fixed; empty for a scalar
  bool unknown_rank = false;         // kTensor whose rank is not known
  std::vector<MilType> elements;     // kList {elem}, kTuple {items...}, kDict {key, value}, kState {wrapped}
  int64_t list_length = kUnknownDim; // kList

  static MilType tensor(MilDType dt, Shape s) { MilType t; t.dtype = dt; t.shape = std::move(s); return t; }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_scalar() const { return kind == Kind::kTensor && !unknown_rank && shape.empty(); }
  bool has_static_shape() const;
  int64_t numel() const;             // -1 unless a tensor with a static shape
  std::string str() const;           // text spelling, e.g. "tensor<fp16, [2, ?]>"
  bool operator==(const MilType& o) const;
};

struct MilBlobRef {
  std::string path;     // e.g. "@model_path/weights/weight.bin"
  uint64_t offset = 0;  // offset of the blob's 64-byte metadata record
};

struct MilValue {
  enum class Kind : uint8_t { kTensor, kBlob, kList, kTuple, kDict };
  Kind kind = Kind::kTensor;
  MilType type;
  // kTensor, non-string: the elements little-endian in type.dtype's encoding, row-major; sub-byte
  // types packed LSB first as in weight.bin; bool one byte (0/1) each.
  std::vector<uint8_t> data;
  std::vector<std::string> strings;  // kTensor of dtype string
  MilBlobRef blob;                   // kBlob: the tensor described by `type` lives in a weight file
  std::vector<MilValue> items;       // kList / kTuple items; kDict: key0, value0, key1, value1, ...

  bool is_immediate_tensor() const { return kind == Kind::kTensor; }
  int64_t numel() const;  // elements of an immediate tensor
  // Element accessors for immediate tensors. They throw Error(kFormat) if the value is not an
  // immediate tensor of a fitting type (ints: integer or bool types; floats: any numeric type).
  std::vector<int64_t> ints() const;
  std::vector<double> floats() const;
  int64_t scalar_int() const;
  double scalar_float() const;
  bool scalar_bool() const;
  const std::string& scalar_string() const;
  std::string str() const;  // short description for messages, e.g. tensor<int32, [2]>([1, 2])
};

// Where an op's input variable comes from, filled by validate(). The interpreter can index its
// value table with it instead of looking names up.
struct MilVarRef {
  enum class Source : uint8_t { kUnresolved, kFunctionInput, kBlockInput, kOpOutput };
  Source source = Source::kUnresolved;
  int32_t op = -1;     // kOpOutput: index of the producing op in its block's ops
  int32_t index = -1;  // output index of that op, or input index of the function / block
  int32_t depth = 0;   // blocks up from the consumer's block (0: same block)
};

struct MilBinding {
  std::string name;               // a variable name; empty when `value` is set
  std::optional<MilValue> value;  // an inline value (text literal, protobuf Binding.value)
  MilVarRef ref;                  // resolved variable (validate())
  bool is_value() const { return value.has_value(); }
};

// `x = a` has one binding; a tuple argument `values = (a, b)` has several.
struct MilArgument {
  std::string name;
  std::vector<MilBinding> bindings;
};

struct MilNamedType {
  std::string name;
  MilType type;
};

struct MilAttribute {
  std::string name;
  MilValue value;
};

struct SourceLoc {
  int line = 0;  // 1-based; 0 when the op did not come from text
  int col = 0;
};

struct MilBlock;

struct MilOp {
  std::string type;                     // "conv", "const", "constexpr_lut_to_dense", ...
  std::vector<MilArgument> inputs;      // in source order
  std::vector<MilNamedType> outputs;
  std::vector<MilAttribute> attributes; // "name", and for const ops "val"; iOS16 constexpr ops keep operands here
  std::vector<MilBlock> blocks;         // nested blocks of control-flow ops (protobuf)
  SourceLoc loc;

  const MilArgument* input(std::string_view name) const;      // nullptr if absent
  const MilValue* attribute(std::string_view name) const;     // nullptr if absent
  std::string name() const;  // the "name" attribute if it is a string, else the first output's name
  std::string where() const; // "op 'name' (conv) at line:col" for messages
};

struct MilBlock {
  std::vector<MilNamedType> inputs;
  std::vector<MilOp> ops;               // in execution order
  std::vector<std::string> outputs;
  std::vector<MilVarRef> output_refs;   // validate()
};

struct MilFunction {
  std::string name;
  std::string opset;   // "ios16", "ios18" (protobuf CoreML6/7/8 are mapped to these)
  std::vector<MilNamedType> inputs;
  std::vector<MilAttribute> attributes;  // e.g. FlexibleShapeInformation of flexible-shape models
  MilBlock block;
  SourceLoc loc;
};

struct MilProgram {
  std::string source;   // file name for messages
  std::string version;  // "1.0", "1.3" (text); the protobuf version number as text
  std::vector<MilAttribute> attributes;  // e.g. buildInfo
  std::vector<MilFunction> functions;

  const MilFunction* function(std::string_view name) const;  // nullptr if absent
  // "main", or the only function; throws Error(kFormat) otherwise.
  const MilFunction& main() const;
};

// Throws Error(kFormat) naming `where` unless `v` is self-consistent: an immediate tensor has a
// static shape and exactly the bytes (or strings) it needs, a blob value a static tensor type; list,
// tuple and dict items recursively. Both readers call this for every value they produce.
void check_value(const MilValue& v, const std::string& where);

// Checks the program's scoping rules and fills every MilVarRef: each variable (function input,
// block input, op output) is defined once per function, every argument and block output names a
// variable defined before it, const ops have exactly one output whose type equals their `val`.
// Throws Error(kFormat) naming the source, the op and its line:column when the program came from text.
void validate(MilProgram& program);

// Short display of op counts by type, e.g. {"const": 751, "linear": 138}.
std::vector<std::pair<std::string, int>> op_type_counts(const MilFunction& f);

}  // namespace sdpal::coreml
