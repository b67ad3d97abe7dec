// A MIL interpreter: runs one function of a parsed Core ML program (coreml::MilProgram, from
// model.mil text or a model.mlmodel protobuf) op by op, as written. It is the reference path the
// native modules are checked against, so it follows MIL's semantics (coremltools'
// mil/ops/defs/iOS15..iOS18) and layouts (NCHW-style, e.g. [2, 4, 64, 64] or [B, C, 1, S]), not
// the engine's channels-last convention.
//
// - Tensors in and out are F32, row-major, in the program's own shapes. Inputs are bound by name.
// - Arithmetic is fp32 (reductions accumulate in double). With fp16_rounding, every value whose
//   MIL type is fp16 (or bf16) is rounded to that type after the op that makes it (and fp16
//   inputs on the way in), the way Core ML stores fp16 tensors between ops.
// - int and bool values are held as floats: exact up to 2^24, enough for token ids, indices and
//   shapes.
// - Weights stay in the mapped weight file: `const` and constexpr ops (constexpr_lut_to_dense in
//   both the iOS16 and the iOS18 form, constexpr_affine_dequantize, constexpr_cast,
//   constexpr_blockwise_shift_scale, constexpr_sparse_to_dense) are decoded when an op uses them
//   and dropped after it, so memory holds one layer's weights at a time, never a float copy of
//   the model. Intermediate values are freed after their last use.
// - Errors: an op type the interpreter does not implement is Error(kUnsupported) from the
//   constructor naming the type, the op and its line; shape mismatches (operands, or a result that
//   differs from the op's declared output type) are Error(kFormat) naming the op; bad inputs are
//   Error(kInvalidArgument) naming the input.
// - Conv, matmul, linear and einsum run on oneDNN's sgemm (all OpenMP threads); element-wise ops
//   write in place over operands they are the last reader of. One run() at a time per Interpreter.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/coreml/mil_ast.h"
#include "io/coreml/mil_consts.h"

namespace sdpal::coreml {
struct CoreMLModel;
}

namespace sdpal::mil {

struct InterpreterOptions {
  bool fp16_rounding = true;  // round fp16-typed values to fp16 after each op, like Core ML
  bool profile = false;       // time each op type (see Interpreter::profile())
  // Element-wise ops (and softmax, batch_norm) write their result over an operand's storage when
  // they are its last reader and nothing else shares it: less memory and no page faults.
  bool reuse_storage = true;
  // Called after each op that runs (not const / constexpr ops) with its results, e.g. to compare
  // intermediate values with another implementation. Throwing from it stops the run. The tensors
  // share storage with the run's values: with reuse_storage a later op may overwrite them, so
  // clone() what you keep (or turn reuse_storage off).
  std::function<void(const coreml::MilOp& op, const std::vector<Tensor>& outputs)> observer;
  // Compute only these function outputs (empty: all). Ops none of them depends on are neither run nor
  // required to be supported, e.g. the image-zeroing branch of Apple's safety checker (non_zero,
  // scatter_nd) when only its scores are wanted. An unknown name is Error(kInvalidArgument).
  std::vector<std::string> outputs;
};

struct OpProfile {
  std::string type;
  int64_t count = 0;
  double seconds = 0;
};

class Interpreter {
 public:
  // `program` must be validated (coreml::validate; the readers do it) and outlive the
  // interpreter. `weights` resolves BLOBFILE values ("@model_path/weights/weight.bin"); it may be
  // null for a program without any. Throws Error(kInvalidArgument) for an unknown function,
  // Error(kUnsupported) for ops it cannot run (naming the op type, the op and its line).
  Interpreter(const coreml::MilProgram& program, std::string function_name,
              std::shared_ptr<const coreml::WeightFiles> weights, InterpreterOptions options = {});
  // The model's main function with its weight files; `model` must outlive the interpreter.
  explicit Interpreter(const coreml::CoreMLModel& model, InterpreterOptions options = {});
  ~Interpreter();
  Interpreter(Interpreter&&) noexcept;
  Interpreter& operator=(Interpreter&&) noexcept;

  const coreml::MilFunction& function() const;

  // Binds every function input by name (F32 tensors of the declared shape; extra or missing names
  // are errors), runs the function and returns its outputs (options.outputs, or all) by name (F32).
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);

  // Per op type: ops run and seconds spent, over all run() calls so far, slowest first. Empty
  // unless options.profile.
  std::vector<OpProfile> profile() const;

  // Op types run() implements (besides `const` and the constexpr ops), sorted.
  static std::vector<std::string> supported_ops();
  static bool supports(std::string_view op_type);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdpal::mil
