// The MIL interpreter end to end on hand-written programs: weights from a weight.bin (dense fp16
// and palettized), fp16 rounding, a compiled-model folder, repeated runs, and the errors it
// reports (unknown ops, undefined / redefined variables, shape mismatches, bad inputs).
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/dtype.h"
#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_proto.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/model_folder.h"
#include "io/coreml/synthetic_weights.h"
#include "golden.h"
#include "mil/interpreter.h"
#include "mil/tensor_util.h"
#include "test_util.h"

namespace sdpal::mil {
namespace {

using sdpal::testing::code_of;

namespace fs = std::filesystem;
using coreml::MilProgram;


MilProgram parse(const std::string& text) {
  MilProgram p = coreml::parse_mil_text(text, "test.mil");
  coreml::validate(p);
  return p;
}

std::string temp_root() { return ::testing::TempDir() + "/sdpal_mil_" + std::to_string(::getpid()); }

std::string temp_dir(const std::string& name) {
  const std::string d = temp_root() + "/" + name;
  fs::create_directories(d);
  return d;
}

// Removes this process's temporary folders after the last test.
class TempCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(temp_root(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempCleanup);

Tensor tensor(const Shape& s, std::vector<float> v) {
  EXPECT_EQ(int64_t(v.size()), shape_numel(s));
  return Tensor::from_data(s, v.data());
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.f32(), t.f32() + t.numel()); }

// The coremlc (program 1.0) form, with dense fp16 and palettized weights in weights/weight.bin:
// y = linear(a), z = conv1x1(img) + 1, both computed in fp16 and cast to fp32.
const char* kProgram = R"(program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-version", "1839.0.0"}})]
{
    func main<ios16>(tensor<fp32, [1, 4]> a, tensor<fp16, [1, 3, 2, 2]> img) {
            tensor<string, []> to16 = const()[name = tensor<string, []>("to16"), val = tensor<string, []>("fp16")];
            tensor<string, []> to32 = const()[name = tensor<string, []>("to32"), val = tensor<string, []>("fp32")];
            tensor<fp16, [2, 4]> w = const()[name = tensor<string, []>("w"), val = tensor<fp16, [2, 4]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(64)))];
            tensor<fp16, [2]> b = const()[name = tensor<string, []>("b"), val = tensor<fp16, [2]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(192)))];
            tensor<fp16, [4, 3, 1, 1]> cw = constexpr_lut_to_dense()[indices = tensor<uint8, [3]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(320))), lut = tensor<fp16, [4]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(448))), name = tensor<string, []>("cw_palettized"), shape = tensor<uint32, [4]>([4, 3, 1, 1])];
            tensor<string, []> pad_type = const()[name = tensor<string, []>("pad_type"), val = tensor<string, []>("valid")];
            tensor<int32, [2]> strides = const()[name = tensor<string, []>("strides"), val = tensor<int32, [2]>([1, 1])];
            tensor<int32, []> groups = const()[name = tensor<string, []>("groups"), val = tensor<int32, []>(1)];
            tensor<fp16, []> one = const()[name = tensor<string, []>("one"), val = tensor<fp16, []>(0x1p+0)];
            tensor<fp16, [1, 4]> a16 = cast(dtype = to16, x = a)[name = tensor<string, []>("a16")];
            tensor<fp16, [1, 2]> y16 = linear(bias = b, weight = w, x = a16)[name = tensor<string, []>("y16")];
            tensor<fp16, [1, 4, 2, 2]> c = conv(groups = groups, pad_type = pad_type, strides = strides, weight = cw, x = img)[name = tensor<string, []>("c")];
            tensor<fp16, [1, 4, 2, 2]> z16 = add(x = c, y = one)[name = tensor<string, []>("z16")];
            tensor<fp32, [1, 2]> y = cast(dtype = to32, x = y16)[name = tensor<string, []>("y")];
            tensor<fp32, [1, 4, 2, 2]> z = cast(dtype = to32, x = z16)[name = tensor<string, []>("z")];
        } -> (y, z);
}
)";

const float kW[8] = {1, 0, 2, 1, 0.5f, -1, 0, 4};
const float kB[2] = {0.25f, -0.5f};
const float kLut[4] = {0, 1, -2, 0.5f};
const int kIdx[12] = {1, 0, 2, 3, 1, 1, 0, 0, 1, 2, 2, 3};  // conv weight [4, 3] as LUT indices

// Writes weights/weight.bin for kProgram under `dir`: the generator's layout, then our values.
void write_weights(const MilProgram& p, const std::string& dir) {
  fs::create_directories(dir + "/weights");
  const std::string bin = dir + "/weights/weight.bin";
  coreml::write_synthetic_weight_bin(coreml::plan_blob_layouts(coreml::collect_blob_refs(p)).at(0), bin);
  const auto storage = coreml::BlobStorage::open(bin);
  std::fstream f(bin, std::ios::in | std::ios::out | std::ios::binary);
  auto put = [&](uint64_t offset, const std::vector<uint8_t>& bytes) {
    const coreml::BlobView v = storage->blob(offset);
    ASSERT_EQ(v.nbytes, bytes.size());
    f.seekp(std::streamoff(v.data_offset));
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  };
  auto halves = [](const float* v, size_t n) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_f16(v[i]);
      out.push_back(uint8_t(h & 0xff));
      out.push_back(uint8_t(h >> 8));
    }
    return out;
  };
  put(64, halves(kW, 8));
  put(192, halves(kB, 2));
  std::vector<uint8_t> packed(3, 0);  // 2-bit indices, LSB first
  for (int i = 0; i < 12; ++i) packed[size_t(i / 4)] |= uint8_t(kIdx[i] << (2 * (i % 4)));
  put(320, packed);
  put(448, halves(kLut, 4));
}

std::map<std::string, Tensor> program_inputs() {
  // 2049 is not an fp16 value: Core ML receives the fp16 input 2048.
  return {{"a", tensor({1, 4}, {1, 2, -1, 0.5f})},
          {"img", tensor({1, 3, 2, 2}, {1, 2, 3, 2049, 0.5f, -1, 0, 2, -0.25f, 4, 1, 1})}};
}

// conv1x1 + 1 over img (with img[3] as given), in exact arithmetic (the values are small binary fractions).
std::vector<float> expected_z(float img3) {
  const float img[12] = {1, 2, 3, img3, 0.5f, -1, 0, 2, -0.25f, 4, 1, 1};
  std::vector<float> z(16);
  for (int o = 0; o < 4; ++o)
    for (int p = 0; p < 4; ++p) {
      double s = 1;
      for (int c = 0; c < 3; ++c) s += double(kLut[kIdx[o * 3 + c]]) * img[c * 4 + p];
      z[size_t(o * 4 + p)] = float(s);
    }
  return z;
}

TEST(MilInterpreter, RunsAProgramWithDenseAndPalettizedWeights) {
  const MilProgram p = parse(kProgram);
  const std::string dir = temp_dir("weights");
  write_weights(p, dir);
  Interpreter interp(p, "main", coreml::WeightFiles::in_directory(dir));
  const auto out = interp.run(program_inputs());
  ASSERT_EQ(out.size(), 2u);
  // y = a W^T + b = [1 - 2 + 0.5 + 0.25, 0.5 - 2 + 2 - 0.5]
  EXPECT_EQ(values(out.at("y")), (std::vector<float>{-0.25f, 0.0f}));
  EXPECT_EQ(out.at("z").shape(), (Shape{1, 4, 2, 2}));
  const std::vector<float> want = expected_z(2048.0f);
  for (size_t i = 0; i < want.size(); ++i)  // the only inexact fp16 results are around 2048
    EXPECT_EQ(out.at("z").f32()[i], f16_to_f32(f32_to_f16(want[i]))) << i;
  // A second run gives the same results (run state is reset).
  const auto again = interp.run(program_inputs());
  EXPECT_EQ(values(again.at("z")), values(out.at("z")));
  EXPECT_EQ(values(again.at("y")), values(out.at("y")));
}

TEST(MilInterpreter, Fp16RoundingCanBeTurnedOff) {
  const MilProgram p = parse(kProgram);
  const std::string dir = temp_dir("weights_norounding");
  write_weights(p, dir);
  InterpreterOptions opt;
  opt.fp16_rounding = false;
  Interpreter interp(p, "main", coreml::WeightFiles::in_directory(dir), opt);
  const auto out = interp.run(program_inputs());
  EXPECT_EQ(values(out.at("z")), expected_z(2049.0f));  // the fp32 values, 2049 kept
}

TEST(MilInterpreter, RunsACompiledModelFolder) {
  const std::string dir = temp_dir("Tiny.mlmodelc");
  {
    std::ofstream(dir + "/model.mil") << kProgram;
  }
  write_weights(parse(kProgram), dir);
  const coreml::CoreMLModel model = coreml::load_model(dir);
  Interpreter interp(model);
  EXPECT_EQ(interp.function().name, "main");
  EXPECT_EQ(values(interp.run(program_inputs()).at("y")), (std::vector<float>{-0.25f, 0.0f}));
}

TEST(MilInterpreter, OutputsCanBeInputsConstantsAndSharedValues) {
  const MilProgram p = parse(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2]> x) {
        tensor<fp32, [2]> c = const()[name = string("c"), val = tensor<fp32, [2]>([0x1p-1, 3])];
        tensor<fp32, [2]> s = mul(x = x, y = x)[name = string("s")];
        tensor<fp32, [2]> t = add(x = s, y = c)[name = string("t")];
        tensor<fp32, [2]> u = sub(x = t, y = s)[name = string("u")];
    } -> (x, c, s, u);
}
)");
  InterpreterOptions opt;
  opt.profile = true;
  Interpreter interp(p, "main", nullptr, opt);
  const auto out = interp.run({{"x", tensor({2}, {3, -2})}});
  EXPECT_EQ(values(out.at("x")), (std::vector<float>{3, -2}));
  EXPECT_EQ(values(out.at("c")), (std::vector<float>{0.5f, 3}));
  EXPECT_EQ(values(out.at("s")), (std::vector<float>{9, 4}));
  EXPECT_EQ(values(out.at("u")), (std::vector<float>{0.5f, 3}));
  const auto prof = interp.profile();
  EXPECT_EQ(prof.size(), 3u);  // mul, add, sub (const ops are not run)
  for (const auto& e : prof) EXPECT_EQ(e.count, 1);
}

// y = x W^T (+ b) on [1, K] rows, rounded to fp16.
std::vector<float> linear16(const std::vector<float>& x, const Tensor& w, const Tensor* b = nullptr) {
  const int64_t n = w.dim(0), k = w.dim(1);
  std::vector<float> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = b ? b->f32()[i] : 0.0;
    for (int64_t j = 0; j < k; ++j) s += double(x[size_t(j)]) * w.f32()[i * k + j];
    y[size_t(i)] = f16_to_f32(f32_to_f16(float(s)));
  }
  return y;
}

void expect_near_rel(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, double(std::fabs(want[i])));
    err = std::max(err, double(std::fabs(got[i] - want[i])));
  }
  EXPECT_LE(err, tol * scale) << what;
}

// The protobuf programs coremltools 8.1 wrote (tests/goldens/coreml/tiny_ios1{6,8}.mlpackage, made by
// tests/reference/make_coreml_goldens.py), with their real weight.bin, against the dense weights
// coremltools decodes for them (tiny_expected.safetensors).
TEST(MilInterpreter, RunsCoremltoolsPackages) {
  const testing::Golden dense("tests/goldens/coreml/tiny_expected.safetensors");
  auto run = [](const std::string& name, const Tensor& x) {
    const std::string dir = testing::repo_path("tests/goldens/coreml/tiny_" + name + ".mlpackage/Data/com.apple.CoreML");
    const coreml::MlModelSpec spec = coreml::read_mlmodel_file(dir + "/model.mlmodel");
    Interpreter interp(spec.program, "main", coreml::WeightFiles::in_directory(dir));
    return interp.run({{"x", x}});
  };
  auto plus = [](const Tensor& t, float c) {
    std::vector<float> v = values(t);
    for (float& a : v) a = f16_to_f32(f32_to_f16(a + c));
    return v;
  };
  {  // iOS18: sub-byte indices, per-group tables, vectors
    std::vector<float> x(16, 0.0f);
    for (int i = 0; i < 16; ++i) x[size_t(i)] = f16_to_f32(f32_to_f16(0.1f * float(i % 5) - 0.2f));
    const auto out = run("ios18", tensor({1, 16}, x));
    const auto h = linear16(x, dense.f32("ios18/w4g"));
    const auto h2 = linear16(h, dense.f32("ios18/wv"));
    expect_near_rel(values(out.at("y")), linear16(h2, dense.f32("ios18/w6")), 1e-2, "ios18 y");
    EXPECT_EQ(values(out.at("z3")), plus(dense.f32("ios18/w3"), 1.0f));
    EXPECT_EQ(values(out.at("z1")), plus(dense.f32("ios18/w1"), 1.0f));
    EXPECT_EQ(values(out.at("z8")), plus(dense.f32("ios18/w8"), 1.0f));
  }
  {  // iOS16: constexpr operands as attributes; linear, relu, reshape, conv, split, concat, mul
    std::vector<float> x(8, 0.0f);
    for (int i = 0; i < 8; ++i) x[size_t(i)] = f16_to_f32(f32_to_f16(0.3f * float(i % 3) - 0.25f));
    const auto out = run("ios16", tensor({1, 8}, x));
    const Tensor b16 = dense.f32("ios16/b16");
    std::vector<float> h = linear16(x, dense.f32("ios16/w6"), &b16);
    for (float& v : h) v = std::max(v, 0.0f);
    const Tensor w4 = dense.f32("ios16/w4");
    const std::vector<float> c = linear16(h, w4.reshape({8, 16}));  // 1x1 conv on a 1x1 image
    std::vector<float> y;
    for (int part : {0, 1, 0})
      for (int i = 0; i < 4; ++i) y.push_back(f16_to_f32(f32_to_f16(c[size_t(part * 4 + i)] * 0.5f)));
    expect_near_rel(values(out.at("y")), y, 1e-2, "ios16 y");
    std::vector<float> z = values(dense.f32("ios16/w2"));
    const Tensor zb = dense.f32("ios16/z_bias");
    for (size_t i = 0; i < z.size(); ++i) z[i] = f16_to_f32(f32_to_f16(z[i] + zb.f32()[i]));
    EXPECT_EQ(values(out.at("z")), z);
    EXPECT_EQ(values(out.at("z1")), plus(dense.f32("ios16/w1"), 1.0f));
    EXPECT_EQ(values(out.at("z8")), plus(dense.f32("ios16/w8"), -2.0f));
  }
}

TEST(MilInterpreter, InPlaceUpdatesNeverTouchLiveOrCallerStorage) {
  const MilProgram p = parse(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2, 2]> x) {
        tensor<fp32, [4]> xv = reshape(x = x, shape = tensor<int32, [1]>([4]))[name = string("xv")];
        tensor<fp32, [4]> e = exp(x = xv)[name = string("e")];
        tensor<fp32, [2, 2]> a = mul(x = x, y = fp32(2))[name = string("a")];
        tensor<fp32, [4]> v = reshape(x = a, shape = tensor<int32, [1]>([4]))[name = string("v")];
        tensor<fp32, [2, 2]> b = sin(x = a)[name = string("b")];
        tensor<fp32, [4]> bv = reshape(x = b, shape = tensor<int32, [1]>([4]))[name = string("bv")];
        tensor<fp32, [4]> s = add(x = v, y = bv)[name = string("s")];
        tensor<fp32, [4]> t = mul(x = s, y = fp32(3))[name = string("t")];
        tensor<fp32, [4]> u = add(x = t, y = e)[name = string("u")];
    } -> (u, v);
}
)");
  std::map<std::string, const void*> storage;
  InterpreterOptions opt;
  opt.observer = [&](const coreml::MilOp& op, const std::vector<Tensor>& outs) { storage[op.name()] = outs[0].raw(); };
  Interpreter interp(p, "main", nullptr, opt);
  const Tensor x = tensor({2, 2}, {0.5f, -1, 2, 0.25f});
  const auto out = interp.run({{"x", x}});
  EXPECT_EQ(values(x), (std::vector<float>{0.5f, -1, 2, 0.25f}));  // the caller's tensor, read through a view
  EXPECT_NE(storage["e"], storage["xv"]);
  EXPECT_NE(storage["b"], storage["a"]);  // a lives on as v
  EXPECT_EQ(storage["t"], storage["s"]);  // s dies at t: computed in place
  EXPECT_EQ(storage["u"], storage["t"]);
  for (int i = 0; i < 4; ++i) {
    const float xi = x.f32()[i], a = 2 * xi;
    EXPECT_FLOAT_EQ(out.at("v").f32()[i], a);
    EXPECT_FLOAT_EQ(out.at("u").f32()[i], 3 * (a + std::sin(a)) + std::exp(xi)) << i;
  }
  // Without storage reuse every op writes a new tensor, with the same results.
  storage.clear();
  opt.reuse_storage = false;
  Interpreter fresh(p, "main", nullptr, opt);
  const auto out2 = fresh.run({{"x", x}});
  EXPECT_NE(storage["t"], storage["s"]);
  EXPECT_NE(storage["u"], storage["t"]);
  EXPECT_EQ(values(out2.at("u")), values(out.at("u")));
}

TEST(MilInterpreter, UnknownOpIsAnErrorNamingTypeNameAndLine) {
  const MilProgram p = parse(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2]> x) {
        tensor<fp32, [2]> a = relu(x = x)[name = string("a")];
        tensor<fp32, [2]> y = frobnicate(x = a)[name = string("my_op")];
    } -> (y);
}
)");
  std::string msg;
  EXPECT_EQ(code_of([&] { Interpreter(p, "main", nullptr); }, &msg), ErrorCode::kUnsupported);
  EXPECT_NE(msg.find("'frobnicate'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'my_op'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at 5:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test.mil"), std::string::npos) << msg;
  EXPECT_FALSE(Interpreter::supports("frobnicate"));
  EXPECT_TRUE(Interpreter::supports("conv"));
  EXPECT_TRUE(Interpreter::supports("constexpr_lut_to_dense"));
  EXPECT_FALSE(Interpreter::supports("constexpr_lut_to_sparse"));
}

TEST(MilInterpreter, UndefinedAndRedefinedVariablesAreErrors) {
  std::string msg;
  EXPECT_EQ(code_of([&] {
              parse(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2]> x) {
        tensor<fp32, [2]> y = relu(x = nope)[name = string("y")];
    } -> (y);
}
)");
            }, &msg),
            ErrorCode::kFormat);
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] {
              parse(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2]> x) {
        tensor<fp32, [2]> y = relu(x = x)[name = string("y")];
        tensor<fp32, [2]> y = relu(x = x)[name = string("y2")];
    } -> (y);
}
)");
            }, &msg),
            ErrorCode::kFormat);
  EXPECT_NE(msg.find("'y'"), std::string::npos) << msg;
  // An unvalidated program (references unresolved) is refused rather than misread.
  const MilProgram raw = coreml::parse_mil_text(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2]> x) {
        tensor<fp32, [2]> y = relu(x = x)[name = string("y")];
    } -> (y);
}
)", "raw.mil");
  EXPECT_EQ(code_of([&] { Interpreter(raw, "main", nullptr); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("validate"), std::string::npos) << msg;
}

TEST(MilInterpreter, ShapeMismatchesNameTheOp) {
  struct Case {
    const char* body;
    const char* needle;
  } cases[] = {
      {R"(tensor<fp32, [2, 3]> y = add(x = x, y = tensor<fp32, [4]>([1, 2, 3, 4]))[name = string("bad_add")];)", "do not broadcast"},
      {R"(tensor<fp32, [2, 2]> y = matmul(x = x, y = x)[name = string("bad_add")];)", "inner dimensions differ"},
      {R"(tensor<fp32, [3, 2]> y = relu(x = x)[name = string("bad_add")];)", "declared tensor<fp32, [3, 2]>"},
      {R"(tensor<fp32, [5]> y = reshape(x = x, shape = tensor<int32, [1]>([5]))[name = string("bad_add")];)", "cannot reshape"},
      {R"(tensor<fp32, [2, 3]> y = gelu(x = x, mode = string("FOO"))[name = string("bad_add")];)", "unknown gelu mode"},
      {R"(tensor<fp32, [2, 3]> y = softmax(x = x, axis = int32(2))[name = string("bad_add")];)", "out of range"},
  };
  for (const Case& c : cases) {
    const std::string text = std::string("program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2, 3]> x) {\n        ") + c.body +
                             "\n    } -> (y);\n}\n";
    const MilProgram p = parse(text);
    Interpreter interp(p, "main", nullptr);
    std::string msg;
    EXPECT_EQ(code_of([&] { interp.run({{"x", Tensor::zeros({2, 3})}}); }, &msg), ErrorCode::kFormat) << c.body;
    EXPECT_NE(msg.find("op 'bad_add'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("at 4:"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
  }
}

TEST(MilInterpreter, BadInputsAreInvalidArguments) {
  const MilProgram p = parse(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [2, 3]> x, tensor<fp16, [1]> s) {
        tensor<fp32, [2, 3]> y = relu(x = x)[name = string("y")];
    } -> (y);
}
)");
  Interpreter interp(p, "main", nullptr);
  std::string msg;
  EXPECT_EQ(code_of([&] { interp.run({{"x", Tensor::zeros({2, 3})}}); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("missing input 's'"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { interp.run({{"x", Tensor::zeros({3, 2})}, {"s", Tensor::zeros({1})}}); }, &msg),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("'x' has shape [3, 2]"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { interp.run({{"x", Tensor::zeros({2, 3})}, {"s", Tensor::zeros({1})}, {"t", Tensor::zeros({1})}}); }, &msg),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("no input 't'"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { interp.run({{"x", Tensor::zeros({2, 3}, DType::F16)}, {"s", Tensor::zeros({1})}}); }, &msg),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { Interpreter(p, "other", nullptr); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("no function 'other'"), std::string::npos) << msg;
  // After a failed run the interpreter still works.
  EXPECT_EQ(interp.run({{"x", Tensor::zeros({2, 3})}, {"s", Tensor::zeros({1})}}).at("y").shape(), (Shape{2, 3}));
}

TEST(MilInterpreter, BlobWithoutWeightFilesIsAnError) {
  const MilProgram p = parse(kProgram);
  Interpreter interp(p, "main", nullptr);
  std::string msg;
  EXPECT_EQ(code_of([&] { interp.run(program_inputs()); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("no weight files"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'y16'"), std::string::npos) << msg;  // the op that needed them
}

TEST(MilInterpreterHelpers, FastExpIsAccurate) {
  double worst = 0;
  for (float x = -87.0f; x < 88.5f; x += 0.000731f * (1.0f + std::fabs(x))) {
    const double want = std::exp(double(x));
    worst = std::max(worst, std::fabs(double(detail::exp_fast(x)) - want) / want);
  }
  EXPECT_LT(worst, 5e-7);  // a few ulp
  EXPECT_EQ(detail::exp_fast(0.0f), 1.0f);
  EXPECT_EQ(detail::exp_fast(-INFINITY), 0.0f);
  EXPECT_EQ(detail::exp_fast(-100.0f), 0.0f);
  EXPECT_EQ(detail::exp_fast(INFINITY), INFINITY);
  EXPECT_EQ(detail::exp_fast(89.0f), INFINITY);
  EXPECT_TRUE(std::isnan(detail::exp_fast(NAN)));
}

TEST(MilInterpreterHelpers, Fp16RoundingMatchesTheScalarConversion) {
  // Every fp16 value, the midpoints between neighbours (ties to even) and values beyond the range.
  std::vector<float> v;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float a = f16_to_f32(uint16_t(h));
    v.push_back(a);
    if ((h & 0x7c00) != 0x7c00 && (h & 0x7fff) != 0x7bff) v.push_back((a + f16_to_f32(uint16_t(h + 1))) / 2);
  }
  for (float x : {65520.0f, -65520.0f, 65519.0f, 1e-8f, -3e-8f, 1e30f, NAN}) v.push_back(x);
  std::vector<float> r = v;
  detail::round_to_fp16(r.data(), int64_t(r.size()));
  for (size_t i = 0; i < v.size(); ++i) {
    const float want = f16_to_f32(f32_to_f16(v[i]));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(r[i])) << i;
    else ASSERT_EQ(std::bit_cast<uint32_t>(r[i]), std::bit_cast<uint32_t>(want)) << v[i];
  }
}

}  // namespace
}  // namespace sdpal::mil
