// Protobuf ML programs (.mlpackage made by coremltools): the AST matches coremltools' view, every
// constexpr op decodes to the values coremltools computes, and malformed protobuf is rejected.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_proto.h"
#include "io/coreml/model_folder.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace sdpal::coreml {
namespace {

using sdpal::testing::code_of;

const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/coreml/";


std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class Packages : public ::testing::TestWithParam<const char*> {};

TEST_P(Packages, MatchCoremltoolsAndDecodeEveryConstant) {
  const std::string name = GetParam();
  const CoreMLModel m = load_model(kDir + "tiny_" + name + ".mlpackage");
  EXPECT_EQ(m.files.format, ModelFormat::kPackage);
  std::ifstream js(kDir + "tiny_expected.json");
  const auto info = nlohmann::json::parse(js).at("programs").at(name);
  const MilFunction& f = m.program.main();
  EXPECT_EQ(f.opset, opset_text_name(info.at("opset").get<std::string>()));
  EXPECT_EQ(f.opset, name);
  ASSERT_EQ(f.block.ops.size(), info.at("op_types").size());
  for (size_t i = 0; i < f.block.ops.size(); ++i) {
    EXPECT_EQ(f.block.ops[i].type, info.at("op_types")[i].get<std::string>()) << i;
    EXPECT_EQ(f.block.ops[i].name(), info.at("op_names")[i].get<std::string>()) << i;
  }
  EXPECT_EQ(f.block.outputs, info.at("block_outputs").get<std::vector<std::string>>());
  ASSERT_EQ(m.description.inputs.size(), 1u);
  EXPECT_EQ(m.description.inputs[0].name, "x");
  EXPECT_EQ(m.description.inputs[0].kind, "MultiArray");
  EXPECT_EQ(m.description.inputs[0].dtype, "Float16");
  EXPECT_EQ(m.description.inputs[0].shape, info.at("inputs")[0].at("shape").get<Shape>());
  std::vector<std::string> outs;
  for (const auto& o : m.description.outputs) outs.push_back(o.name);
  EXPECT_EQ(outs, info.at("outputs").get<std::vector<std::string>>());

  auto expected = open_safetensors(kDir + "tiny_expected.safetensors");
  int decoded = 0, dense = 0;
  for (const MilOp& op : f.block.ops) {
    const TensorView* want = expected->find(name + "/" + op.name());
    if (op.type == "constexpr_lut_to_dense") {
      ASSERT_TRUE(want) << op.name();
      const PalettizedView v = palettized_view(f.block, op, m.weights.get());
      ASSERT_EQ(v.shape, want->shape) << op.name();
      std::vector<float> out(size_t(v.numel()));
      decode_palettized(v, 0, v.numel(), out.data());
      const Tensor wt = to_f32(*want);  // aligned copy
      const float* w = wt.f32();
      for (size_t k = 0; k < out.size(); ++k) ASSERT_EQ(out[k], w[k]) << op.name() << " " << k;
      ++decoded;
    } else if (op.type == "const" && want) {
      const TensorView t = const_tensor_view(*op.attribute("val"), m.weights.get(), op.name());
      ASSERT_EQ(t.shape, want->shape);
      const Tensor got = to_f32(t);
      const Tensor wt = to_f32(*want);
      const float* w = wt.f32();
      for (int64_t k = 0; k < got.numel(); ++k) ASSERT_EQ(got.f32()[k], w[k]) << op.name();
      ++dense;
    }
  }
  EXPECT_EQ(decoded, name == std::string("ios16") ? 5 : 6);
  if (name == std::string("ios16")) {
    EXPECT_GE(dense, 1);  // b16, z_bias: fp16 consts in weight.bin
  }
}

INSTANTIATE_TEST_SUITE_P(Coremltools, Packages, ::testing::Values("ios16", "ios18"));

TEST(MilProto, ImmediateValuesOfEveryEncoding) {
  const CoreMLModel m = load_model(kDir + "tiny_ios16.mlpackage");
  const MilFunction& f = m.program.main();
  auto val = [&](const std::string& n) -> const MilValue& {
    for (const auto& op : f.block.ops)
      if (op.name() == n) return *op.attribute("val");
    ADD_FAILURE() << n;
    static MilValue none;
    return none;
  };
  EXPECT_EQ(val("r_shape_0").ints(), (std::vector<int64_t>{1, 16, 1, 1}));  // int32 "ints"
  EXPECT_EQ(val("c_pad_type_0").scalar_string(), "valid");                 // strings
  EXPECT_FALSE(val("cat_interleave_0").scalar_bool());                      // bools
  EXPECT_EQ(val("y_y_0").scalar_float(), 0.5);                              // fp16 as bytes
  EXPECT_EQ(val("y_y_0").type.str(), "tensor<fp16, []>");
  const MilOp& w6 = f.block.ops[0];
  EXPECT_EQ(w6.attribute("shape")->ints(), (std::vector<int64_t>{16, 8}));  // uint32 as bytes
  EXPECT_EQ(w6.attribute("shape")->type.dtype, MilDType::kUInt32);
  // iOS18: operands are inline Binding values; the linear weight refers to the constexpr op.
  const CoreMLModel m18 = load_model(kDir + "tiny_ios18.mlpackage");
  const MilBlock& b18 = m18.program.main().block;
  ASSERT_TRUE(b18.ops[0].input("indices"));
  EXPECT_TRUE(b18.ops[0].input("indices")->bindings[0].is_value());
  EXPECT_EQ(b18.ops[0].input("indices")->bindings[0].value->type.str(), "tensor<uint4, [8, 16]>");
  const MilArgument* weight = nullptr;
  for (const auto& op : b18.ops)
    if (op.type == "linear") weight = op.input("weight");
  ASSERT_TRUE(weight);
  EXPECT_EQ(weight->bindings[0].ref.source, MilVarRef::Source::kOpOutput);
  EXPECT_EQ(b18.ops[size_t(weight->bindings[0].ref.op)].type, "constexpr_lut_to_dense");
}

// ---- hand-built protobuf ------------------------------------------------------------------

struct Pb {
  std::string s;
  Pb& varint(uint64_t v) {
    while (v >= 0x80) s += char(uint8_t(v) | 0x80), v >>= 7;
    s += char(v);
    return *this;
  }
  Pb& tag(uint32_t field, int wt) { return varint(uint64_t(field) << 3 | uint64_t(wt)); }
  Pb& len(uint32_t field, const std::string& body) {
    tag(field, 2).varint(body.size());
    s += body;
    return *this;
  }
  Pb& num(uint32_t field, uint64_t v) { return tag(field, 0).varint(v); }
};

std::string scalar_type(int dtype) { return Pb().len(1, Pb().num(1, dtype).num(2, 0).s).s; }  // ValueType{tensorType}

// Model{mlProgram{functions{"main": Function{opset, block_specializations{opset: Block{ops}}}}}}
std::string model_with_ops(const std::vector<std::string>& ops, const std::string& opset = "CoreML6") {
  Pb block;
  for (const auto& op : ops) block.len(3, op);
  const std::string fn = Pb().len(2, opset).len(3, Pb().len(1, opset).len(2, block.s).s).s;
  const std::string prog = Pb().num(1, 1).len(2, Pb().len(1, "main").len(2, fn).s).s;
  return Pb().num(1, 7).len(502, prog).s;
}

std::string const_op(const std::string& name, const std::string& value_type, const std::string& immediate) {
  const std::string val = Pb().len(2, value_type).len(3, immediate).s;
  const std::string name_val = Pb().len(2, scalar_type(2)).len(3, Pb().len(1, Pb().len(4, Pb().len(1, name).s).s).s).s;
  return Pb()
      .len(1, "const")
      .len(3, Pb().len(1, name).len(2, value_type).s)
      .len(5, Pb().len(1, "val").len(2, val).s)
      .len(5, Pb().len(1, "name").len(2, name_val).s)
      .s;
}

MlModelSpec parse(const std::string& bytes) {
  return parse_mlmodel(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "hand.mlmodel");
}

TEST(MilProto, HandBuiltProgramParses) {
  // tensor<int32, [2]> c = const(val = [3, -4]) as packed ints.
  const std::string vt = Pb().len(1, Pb().num(1, 23).num(2, 1).len(3, Pb().len(1, Pb().num(1, 2).s).s).s).s;
  const std::string ints = Pb().len(1, Pb().len(2, Pb().len(1, Pb().varint(3).varint(uint64_t(-4)).s).s).s).s;
  const MlModelSpec spec = parse(model_with_ops({const_op("c", vt, ints)}));
  EXPECT_EQ(spec.specification_version, 7);
  const MilFunction& f = spec.program.main();
  EXPECT_EQ(f.opset, "ios16");
  ASSERT_EQ(f.block.ops.size(), 1u);
  EXPECT_EQ(f.block.ops[0].attribute("val")->ints(), (std::vector<int64_t>{3, -4}));
}

TEST(MilProto, RejectsBadLengthsAndMalformedMessages) {
  std::string msg;
  const std::string good = read_file(kDir + "tiny_ios16.mlpackage/Data/com.apple.CoreML/model.mlmodel");
  ASSERT_NO_THROW(parse(good));
  // Every truncation is an error, never a crash (ASan/fuzz builds check the memory side).
  for (size_t n = 0; n < good.size(); ++n) {
    const ErrorCode c = code_of([&] { parse(good.substr(0, n)); });
    EXPECT_TRUE(c == ErrorCode::kFormat || c == ErrorCode::kUnsupported) << n;
  }
  // A length running past the end of its message.
  EXPECT_EQ(code_of([&] { parse(Pb().tag(502, 2).varint(1000).s + "abc"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("length 1000 runs past the end"), std::string::npos) << msg;
  EXPECT_NE(msg.find("hand.mlmodel: protobuf Model at byte 2"), std::string::npos) << msg;
  // A length that overflows 64 bits, a varint longer than 10 bytes, a truncated varint.
  EXPECT_EQ(code_of([&] { parse(Pb().tag(502, 2).s + std::string(9, '\xff') + "\x01"); }, &msg), ErrorCode::kFormat);
  EXPECT_EQ(code_of([&] { parse(Pb().tag(1, 0).s + std::string(11, '\x80')); }, &msg), ErrorCode::kFormat);
  EXPECT_EQ(code_of([&] { parse(Pb().tag(1, 0).s + "\x80"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("truncated varint"), std::string::npos) << msg;
  // Wrong wire type for a message field, group wire types, field number 0.
  EXPECT_EQ(code_of([&] { parse(Pb().num(502, 5).s); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("wire type"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { parse(Pb().tag(3, 3).s); }, &msg), ErrorCode::kFormat);
  EXPECT_EQ(code_of([&] { parse(Pb().tag(0, 0).varint(1).s); }, &msg), ErrorCode::kFormat);
  // Not an ML program: a neural network model, or no program at all.
  EXPECT_EQ(code_of([&] { parse(Pb().num(1, 4).len(500, "").s); }, &msg), ErrorCode::kUnsupported);
  EXPECT_EQ(code_of([&] { parse(Pb().num(1, 4).s); }), ErrorCode::kUnsupported);
}

TEST(MilProto, RejectsValuesThatDoNotFitTheirTypes) {
  std::string msg;
  const std::string vec2 = Pb().len(1, Pb().num(1, 23).num(2, 1).len(3, Pb().len(1, Pb().num(1, 2).s).s).s).s;
  const std::string three = Pb().len(1, Pb().len(2, Pb().len(1, Pb().varint(1).varint(2).varint(3).s).s).s).s;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({const_op("c", vec2, three)})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("3 values for tensor<int32, [2]>"), std::string::npos) << msg;
  // fp16 given as 3 bytes for 2 elements.
  const std::string fp16x2 = Pb().len(1, Pb().num(1, 10).num(2, 1).len(3, Pb().len(1, Pb().num(1, 2).s).s).s).s;
  const std::string bytes3 = Pb().len(1, Pb().len(7, Pb().len(1, "abc").s).s).s;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({const_op("c", fp16x2, bytes3)})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("3 bytes for tensor<fp16, [2]>"), std::string::npos) << msg;
  // int32 out of range, rank that disagrees with the dimensions, an unknown dtype code.
  const std::string int32s = Pb().len(1, Pb().num(1, 23).num(2, 0).s).s;
  const std::string huge = Pb().len(1, Pb().len(2, Pb().len(1, Pb().varint(uint64_t(1) << 40).s).s).s).s;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({const_op("c", int32s, huge)})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("int32 value out of range"), std::string::npos) << msg;
  const std::string rank3 = Pb().len(1, Pb().num(1, 23).num(2, 3).s).s;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({const_op("c", rank3, huge)})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("rank 3 with 0 dimensions"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({const_op("c", scalar_type(99), huge)})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("unknown data type 99"), std::string::npos) << msg;
  // A value type nested 100 deep (list of list of ...).
  std::string vt = scalar_type(23);
  for (int i = 0; i < 100; ++i) vt = Pb().len(2, Pb().len(1, vt).s).s;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({const_op("c", vt, huge)})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("nesting deeper than 64"), std::string::npos) << msg;
  // A block without the function's opset; an op input naming an undefined variable.
  EXPECT_EQ(code_of([&] {
              const std::string fn = Pb().len(2, "CoreML6").len(3, Pb().len(1, "CoreML7").len(2, "").s).s;
              parse(Pb().len(502, Pb().len(2, Pb().len(1, "main").len(2, fn).s).s).s);
            }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("no block for its opset 'CoreML6'"), std::string::npos) << msg;
  const std::string relu = Pb()
                               .len(1, "relu")
                               .len(2, Pb().len(1, "x").len(2, Pb().len(1, Pb().len(1, "ghost").s).s).s)
                               .len(3, Pb().len(1, "y").len(2, scalar_type(10)).s)
                               .s;
  EXPECT_EQ(code_of([&] { parse(model_with_ops({relu})); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("undefined variable 'ghost'"), std::string::npos) << msg;
}

TEST(MilProto, SurvivesRandomCorruption) {
  const std::string good = read_file(kDir + "tiny_ios18.mlpackage/Data/com.apple.CoreML/model.mlmodel");
  std::mt19937 rng(5);
  int rejected = 0;
  for (int t = 0; t < 2000; ++t) {
    std::string bad = good;
    for (int k = 0; k < 1 + int(rng() % 4); ++k) bad[rng() % bad.size()] = char(rng());
    try {
      parse(bad);
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace sdpal::coreml
