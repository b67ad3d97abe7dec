// Textual MIL (model.mil): both syntaxes, the AST, scoping checks, errors with line:column, and
// Apple's real Stable Diffusion programs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"
#include "test_util.h"

namespace sdpal::coreml {
namespace {

using sdpal::testing::code_of;

const std::string kFixtures = std::string(SDPAL_SOURCE_DIR) + "/../shared/fixtures/coreml/sd21-base-palettized/";


MilProgram parse(const std::string& text) {
  MilProgram p = parse_mil_text(text, "test.mil");
  validate(p);
  return p;
}

// The iOS16 form coremlc writes (program(1.0), every literal typed as tensor<...>).
const char* kIos16 = R"(program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-component-MIL", "5.30.0"}, {"coremlc-version", "1839.0.0"}})]
{
    func main<ios16>(tensor<fp16, [2, 4]> x, tensor<int32, [?, is0]> ids) {
            tensor<int32, []> axis = const()[name = tensor<string, []>("op_5"), val = tensor<int32, []>(-1)];
            tensor<bool, []> flag = const()[name = tensor<string, []>("op_6"), val = tensor<bool, []>(false)];
            tensor<fp16, []> eps = const()[name = tensor<string, []>("eps"), val = tensor<fp16, []>(0x1.5p-17)];
            tensor<fp32, [3]> f = const()[name = tensor<string, []>("f"), val = tensor<fp32, [3]>([0x1.8p+3, -2.5, 1e-3])];
            tensor<bool, [4]> mask = const()[name = tensor<string, []>("mask"), val = tensor<bool, [4]>([true, true, true, false])];
            tensor<string, []> eq = const()[name = tensor<string, []>("eq"), val = tensor<string, []>("bchk,bkhq->bchq")];
            tensor<string, []> esc = const()[name = tensor<string, []>("esc"), val = tensor<string, []>("a\"b\\c")];
            tensor<fp16, [8, 4]> w = const()[name = tensor<string, []>("w"), val = tensor<fp16, [8, 4]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(64)))];
            tensor<fp16, [4, 4]> p = constexpr_lut_to_dense()[indices = tensor<uint8, [12]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(192))), lut = tensor<fp16, [64]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(320))), name = tensor<string, []>("p_palettized"), shape = tensor<uint32, [2]>([4, 4])];
            tensor<fp16, [2, 8]> y = linear(bias = w, weight = w, x = x)[name = tensor<string, []>("y")];
            tensor<fp16, [2, 4]> a, tensor<fp16, [2, 4]> b = split(axis = axis, num_splits = axis, x = y)[name = tensor<string, []>("s")];
            tensor<fp16, [2, 12]> cat = concat(axis = axis, interleave = flag, values = (a, b, a))[name = tensor<string, []>("cat")];
        } -> (cat, b);
}
)";

TEST(MilText, ParsesTheIos16Form) {
  const MilProgram p = parse(kIos16);
  EXPECT_EQ(p.version, "1.0");
  ASSERT_EQ(p.attributes.size(), 1u);
  const MilValue& bi = p.attributes[0].value;
  ASSERT_EQ(bi.kind, MilValue::Kind::kDict);
  ASSERT_EQ(bi.items.size(), 4u);
  EXPECT_EQ(bi.items[2].scalar_string(), "coremlc-version");
  EXPECT_EQ(bi.items[3].scalar_string(), "1839.0.0");

  const MilFunction& f = p.main();
  EXPECT_EQ(f.opset, "ios16");
  ASSERT_EQ(f.inputs.size(), 2u);
  EXPECT_EQ(f.inputs[1].type.shape, (Shape{kUnknownDim, kUnknownDim}));
  EXPECT_EQ(f.inputs[1].type.str(), "tensor<int32, [?, ?]>");
  const auto& ops = f.block.ops;
  ASSERT_EQ(ops.size(), 12u);
  EXPECT_EQ(ops[0].attribute("val")->scalar_int(), -1);
  EXPECT_FALSE(ops[1].attribute("val")->scalar_bool());
  EXPECT_EQ(ops[2].attribute("val")->scalar_float(), std::ldexp(1.3125, -17));
  EXPECT_EQ(ops[3].attribute("val")->floats(), (std::vector<double>{12.0, -2.5, double(1e-3f)}));
  EXPECT_EQ(ops[4].attribute("val")->ints(), (std::vector<int64_t>{1, 1, 1, 0}));
  EXPECT_EQ(ops[5].attribute("val")->scalar_string(), "bchk,bkhq->bchq");
  EXPECT_EQ(ops[6].attribute("val")->scalar_string(), "a\"b\\c");
  const MilValue* w = ops[7].attribute("val");
  ASSERT_EQ(w->kind, MilValue::Kind::kBlob);
  EXPECT_EQ(w->blob.path, "@model_path/weights/weight.bin");
  EXPECT_EQ(w->blob.offset, 64u);
  EXPECT_EQ(w->type.str(), "tensor<fp16, [8, 4]>");
  EXPECT_EQ(ops[8].name(), "p_palettized");
  EXPECT_EQ(ops[8].attribute("shape")->ints(), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(ops[8].attribute("indices")->blob.offset, 192u);
  EXPECT_EQ(ops[8].loc.line, 13);
  EXPECT_EQ(ops[8].loc.col, 13);

  // Multi-output op and tuple argument, references resolved to producers.
  const MilOp& split = ops[10];
  ASSERT_EQ(split.outputs.size(), 2u);
  EXPECT_EQ(split.outputs[1].name, "b");
  const MilArgument* x = split.input("x");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->bindings[0].ref.source, MilVarRef::Source::kOpOutput);
  EXPECT_EQ(x->bindings[0].ref.op, 9);
  const MilArgument* values = ops[11].input("values");
  ASSERT_TRUE(values);
  ASSERT_EQ(values->bindings.size(), 3u);
  EXPECT_EQ(values->bindings[1].ref.op, 10);
  EXPECT_EQ(values->bindings[1].ref.index, 1);
  EXPECT_EQ(ops[9].input("x")->bindings[0].ref.source, MilVarRef::Source::kFunctionInput);
  EXPECT_EQ(f.block.outputs, (std::vector<std::string>{"cat", "b"}));
  EXPECT_EQ(f.block.output_refs[1].op, 10);

  // Constant operands: a const op's value through a variable.
  const MilValue* cv = const_value(f.block, ops[11].input("interleave")->bindings[0]);
  ASSERT_TRUE(cv);
  EXPECT_FALSE(cv->scalar_bool());
  EXPECT_EQ(const_value(f.block, values->bindings[0]), nullptr);  // computed, not constant
  EXPECT_EQ(const_operand(f.block, ops[8], "shape")->ints(), (std::vector<int64_t>{4, 4}));
}

// The iOS18 form (program(1.3)): bare scalar types, inline literal operands, sub-byte literals, states.
const char* kIos18 = R"(program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremltools-version", "9.0"}})]
{
    func main<ios18>(tensor<fp16, [1, 4]> x, state<tensor<fp16, [1, 1, 4, 64]>> k_state) {
        string c_pad_type = const()[name = string("c_pad_type"), val = string("valid")];
        int32 g1 = const()[name = string("g1"), val = int32(1)];
        fp16 s = const()[name = string("s"), val = fp16(0x1p-3)];
        uint64 big = const()[name = string("big"), val = uint64(18446744073709551615)];
        tensor<fp16, [1, 1, 4, 64]> cached = read_state(input = k_state)[name = string("read_k")];
        tensor<fp16, [4, 6]> w = constexpr_lut_to_dense(indices = tensor<uint4, [4, 3]>([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15]), lut = tensor<fp16, [1, 1, 16, 2]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64))), vector_axis = int32(1))[name = string("w")];
        tensor<uint3, [3]> u3 = const()[name = string("u3"), val = tensor<uint3, [3]>([7, 0, 5])];
        tensor<int4, [2]> i4 = const()[name = string("i4"), val = tensor<int4, [2]>([-8, 7])];
        tensor<int32, [1, 3]> nested = const()[name = string("nested"), val = tensor<int32, [1, 3]>([[0, 1, 2]])];
        tensor<fp16, [1, 6]> y = linear(weight = w, x = x)[name = string("y")];
    } -> (y);
}
)";

TEST(MilText, ParsesTheIos18Form) {
  const MilProgram p = parse(kIos18);
  EXPECT_EQ(p.version, "1.3");
  const MilFunction& f = p.main();
  EXPECT_EQ(f.opset, "ios18");
  ASSERT_EQ(f.inputs[1].type.kind, MilType::Kind::kState);
  EXPECT_EQ(f.inputs[1].type.str(), "state<tensor<fp16, [1, 1, 4, 64]>>");
  const auto& ops = f.block.ops;
  EXPECT_EQ(ops[0].attribute("val")->scalar_string(), "valid");
  EXPECT_TRUE(ops[0].outputs[0].type.is_scalar());
  EXPECT_EQ(ops[1].attribute("val")->scalar_int(), 1);
  EXPECT_EQ(ops[2].attribute("val")->scalar_float(), 0.125);
  EXPECT_EQ(uint64_t(ops[3].attribute("val")->scalar_int()), UINT64_MAX);
  EXPECT_EQ(ops[4].input("input")->bindings[0].ref.source, MilVarRef::Source::kFunctionInput);
  // Inline literal operands of the iOS18 constexpr op.
  const MilOp& w = ops[5];
  const MilValue* idx = const_operand(f.block, w, "indices");
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->type.str(), "tensor<uint4, [4, 3]>");
  EXPECT_EQ(idx->data.size(), 6u);
  EXPECT_EQ(idx->data[0], 0x10);  // LSB first: 0 then 1
  EXPECT_EQ(idx->data[5], 0xFA);  // 10 then 15
  EXPECT_EQ(idx->ints().back(), 15);
  EXPECT_EQ(const_operand(f.block, w, "vector_axis")->scalar_int(), 1);
  EXPECT_EQ(const_operand(f.block, w, "lut")->blob.offset, 64u);
  EXPECT_EQ(ops[6].attribute("val")->ints(), (std::vector<int64_t>{7, 0, 5}));
  EXPECT_EQ(ops[6].attribute("val")->data, (std::vector<uint8_t>{0b01000111, 0b00000001}));  // 7, 0 << 3, 5 << 6
  EXPECT_EQ(ops[7].attribute("val")->ints(), (std::vector<int64_t>{-8, 7}));
  EXPECT_EQ(ops[8].attribute("val")->ints(), (std::vector<int64_t>{0, 1, 2}));
}

// Flexible-shape models carry a function attribute of nested tuples, dicts and lists whose
// tensors have unknown dimensions; the literal's nesting gives their shapes.
TEST(MilText, ParsesFunctionAttributesWithTuplesDictsAndLists) {
  const char* text = R"(program(1.0)
{
    func main<ios17>(tensor<int32, [1, ?]> input_ids) [FlexibleShapeInformation = tuple<tuple<tensor<string, []>, dict<tensor<string, []>, tensor<int32, [?]>>>, tuple<tensor<string, []>, dict<tensor<string, []>, list<tensor<int32, [2]>, ?>>>>((("DefaultShapes", {{"input_ids", [1, 1]}}), ("RangeDims", {{"input_ids", [[1, 1], [1, 512]]}})))] {
            tensor<int32, [1, ?]> y = identity(x = input_ids)[name = tensor<string, []>("y")];
        } -> (y);
}
)";
  const MilProgram p = parse(text);
  const MilFunction& f = p.main();
  EXPECT_EQ(f.opset, "ios17");
  ASSERT_EQ(f.attributes.size(), 1u);
  EXPECT_EQ(f.attributes[0].name, "FlexibleShapeInformation");
  const MilValue& v = f.attributes[0].value;
  ASSERT_EQ(v.kind, MilValue::Kind::kTuple);
  ASSERT_EQ(v.items.size(), 2u);
  const MilValue& defaults = v.items[0];
  EXPECT_EQ(defaults.items[0].scalar_string(), "DefaultShapes");
  const MilValue& shape = defaults.items[1].items[1];  // dict value
  EXPECT_EQ(shape.type.str(), "tensor<int32, [2]>");
  EXPECT_EQ(shape.ints(), (std::vector<int64_t>{1, 1}));
  const MilValue& ranges = v.items[1].items[1].items[1];  // list of [lo, hi] pairs
  ASSERT_EQ(ranges.kind, MilValue::Kind::kList);
  ASSERT_EQ(ranges.items.size(), 2u);
  EXPECT_EQ(ranges.items[1].ints(), (std::vector<int64_t>{1, 512}));
}

struct BadCase {
  const char* text;
  int line, col;
  const char* needle;
};

TEST(MilText, ReportsSyntaxErrorsWithLineAndColumn) {
  const BadCase cases[] = {
      {"program(1.0)\n{\n  func main<ios16>(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> y = relu(x = x)[name = tensor<string, []>(\"y\")]\n  } -> (y);\n}\n",
       5, 3, "expected ';'"},
      {"program(1.0)\n{\n  func main(tensor<fp17, [1]> x) {\n  } -> ();\n}\n", 3, 20, "unknown element type"},
      {"program(1.0)\n{\n  func main() {\n    tensor<int32, [2]> c = const()[val = tensor<int32, [2]>([1, 2, 3])];\n  } -> ();\n}\n",
       4, 42, "3 values for tensor<int32, [2]>"},
      {"program(1.0)\n{\n  func main() {\n    tensor<uint8, []> c = const()[val = tensor<uint8, []>(256)];\n  } -> ();\n}\n",
       4, 41, "out of range for uint8"},
      {"program(1.0)\n{\n  func main() {\n    tensor<string, []> c = const()[val = tensor<string, []>(\"abc)];\n  } -> ();\n}\n",
       4, 61, "unterminated string"},
      {"program(1.0)\n{\n  func main() {\n    tensor<int32, [?, 2]> c = const()[val = tensor<int32, [?, 2]>([1, 2])];\n  } -> ();\n}\n",
       4, 45, "static shape"},
      {"program(1.0)\n{\n  func main() {\n    tensor<int32, [2, 2]> c = const()[val = tensor<int32, [2, 2]>([[1, 2], [3]])];\n  } -> ();\n}\n",
       4, 67, "ragged list"},
      {"program(1.0)\n{\n  func main() {\n    tensor<int32, []> c = const()[val = tensor<int32, []>([1])];\n  } -> ();\n}\n",
       4, 41, "scalar literal written as a list"},
      {"program(1.0)\n{\n  func main(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> y = relu(x = x, x = x);\n  } -> (y);\n}\n",
       4, 39, "argument 'x' given twice"},
      {"program(1.0)\n{\n  func main() {\n  } -> ();\n}\n$", 6, 1, "unexpected character '$'"},
      {"program(1.0)\n{\n  func main() {\n  } -> ();\n}\nextra", 6, 1, "unexpected text after the program"},
      {"program(1.0)\n{\n  func main() {\n    tensor<fp32, []> c = const()[val = tensor<fp32, []>(1e999)];\n  } -> ();\n}\n",
       4, 57, "out-of-range number"},
  };
  for (const auto& c : cases) {
    std::string msg;
    EXPECT_EQ(code_of([&] { parse_mil_text(c.text, "bad.mil"); }, &msg), ErrorCode::kFormat) << c.text;
    const std::string where = "bad.mil:" + std::to_string(c.line) + ":" + std::to_string(c.col) + ": ";
    EXPECT_EQ(msg.rfind(where, 0), 0u) << msg << "\nwanted " << where;
    EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
  }
}

TEST(MilText, RejectsDeepNestingWithoutOverflowingTheStack) {
  std::string deep = "program(1.0)\n{\n  func main() {\n    tensor<int32, [1]> c = const()[val = tensor<int32, [1]>(";
  deep += std::string(100000, '[');
  std::string msg;
  EXPECT_EQ(code_of([&] { parse_mil_text(deep, "deep.mil"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("nesting deeper than 64"), std::string::npos) << msg;
  std::string types = "program(1.0)\n{\n  func main(";
  for (int i = 0; i < 100000; ++i) types += "list<";
  EXPECT_EQ(code_of([&] { parse_mil_text(types, "deep.mil"); }), ErrorCode::kFormat);
}

TEST(MilText, ValidateRejectsUndefinedAndRedefinedVariables) {
  std::string msg;
  const char* undefined =
      "program(1.0)\n{\n  func main(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> y = relu(x = z)[name = tensor<string, []>(\"r\")];\n  } -> (y);\n}\n";
  MilProgram p = parse_mil_text(undefined, "u.mil");
  EXPECT_EQ(code_of([&] { validate(p); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("u.mil:4:5: function 'main', op 'r' (relu) at 4:5: undefined variable 'z'"), std::string::npos) << msg;

  const char* redefined =
      "program(1.0)\n{\n  func main(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> x = relu(x = x);\n  } -> (x);\n}\n";
  p = parse_mil_text(redefined, "r.mil");
  EXPECT_EQ(code_of([&] { validate(p); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("r.mil:4:5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("variable 'x' is redefined"), std::string::npos) << msg;

  const char* bad_output = "program(1.0)\n{\n  func main(tensor<fp16, [1]> x) {\n  } -> (nope);\n}\n";
  p = parse_mil_text(bad_output, "o.mil");
  EXPECT_EQ(code_of([&] { validate(p); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("undefined variable 'nope'"), std::string::npos) << msg;

  const char* use_before_def =
      "program(1.0)\n{\n  func main(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> a = relu(x = b);\n    tensor<fp16, [1]> b = relu(x = x);\n  } -> (a);\n}\n";
  p = parse_mil_text(use_before_def, "d.mil");
  EXPECT_EQ(code_of([&] { validate(p); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("undefined variable 'b'"), std::string::npos) << msg;

  const char* const_mismatch =
      "program(1.0)\n{\n  func main() {\n    tensor<int32, [2]> c = const()[val = tensor<int32, [1]>([1])];\n  } -> (c);\n}\n";
  p = parse_mil_text(const_mismatch, "c.mil");
  EXPECT_EQ(code_of([&] { validate(p); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("does not match its value tensor<int32, [1]>"), std::string::npos) << msg;

  const char* two_mains = "program(1.0)\n{\n  func main() {\n  } -> ();\n  func main() {\n  } -> ();\n}\n";
  p = parse_mil_text(two_mains, "m.mil");
  EXPECT_EQ(code_of([&] { validate(p); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("defined twice"), std::string::npos) << msg;
}

// ---- Apple's real programs ----------------------------------------------------------------

// "Ios16.constexprLutToDense" -> "constexpr_lut_to_dense", "UpsampleNearestNeighbor" -> "upsample_nearest_neighbor".
std::string histogram_op(std::string name) {
  const size_t dot = name.find('.');
  if (dot != std::string::npos) name = name.substr(dot + 1);
  std::string r;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') {
      if (!r.empty()) r += '_';
      r += char(c - 'A' + 'a');
    } else {
      r += c;
    }
  }
  return r;
}

struct RealProgram {
  const char* dir;
  size_t ops;
  int lut_ops;
};

TEST(MilText, ParsesAppleStableDiffusionProgramsAndMatchesTheirHistograms) {
  if (!std::filesystem::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  const RealProgram programs[] = {
      {"original/compiled/TextEncoder.mlmodelc", 1636, 163},
      {"original/compiled/Unet.mlmodelc", 4748, 310},
      {"original/compiled/VAEDecoder.mlmodelc", 971, 0},
      {"original/compiled/VAEEncoder.mlmodelc", 746, 0},
      {"split_einsum_v2/compiled/Unet.mlmodelc", 17614, 310},
  };
  for (const auto& rp : programs) {
    const std::string dir = kFixtures + rp.dir;
    const MilProgram p = read_mil_text_file(dir + "/model.mil");
    const MilFunction& f = p.main();
    EXPECT_EQ(p.version, "1.0");
    EXPECT_EQ(f.opset, "ios16");
    EXPECT_EQ(f.block.ops.size(), rp.ops) << rp.dir;
    std::map<std::string, int> ours;
    for (const auto& [type, n] : op_type_counts(f))
      if (type != "const") ours[type] = n;
    EXPECT_EQ(ours["constexpr_lut_to_dense"], rp.lut_ops) << rp.dir;
    if (rp.lut_ops == 0) ours.erase("constexpr_lut_to_dense");
    std::ifstream js(dir + "/metadata.json");
    const auto meta = nlohmann::json::parse(js)[0].at("mlProgramOperationTypeHistogram");
    std::map<std::string, int> theirs;
    for (const auto& [k, v] : meta.items()) theirs[histogram_op(k)] += v.get<int>();
    EXPECT_EQ(ours, theirs) << rp.dir;
    std::printf("[ program  ] %s: %zu ops, %zu op types besides const\n", rp.dir, f.block.ops.size(), ours.size());
  }
}

}  // namespace
}  // namespace sdpal::coreml
