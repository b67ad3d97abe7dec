// Apple's real Stable Diffusion 2.1 programs (shared fixtures: model.mil without weights) run by the
// MIL interpreter on a synthetic weight.bin: every op type is supported, and the outputs have the
// declared shapes and are finite.
//
// The TextEncoder always runs (a few seconds). The UNet (original and split_einsum_v2 attention),
// VAEDecoder and VAEEncoder take minutes on two cores: they run when SDPAL_MIL_REAL=all (or a
// comma-separated list of program names, e.g. SDPAL_MIL_REAL=VAEDecoder,Unet_split_einsum_v2)
// and print the time and the slowest op types; with both UNets, their outputs are compared.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/synthetic_weights.h"
#include "mil/interpreter.h"
#include "coreml_synthetic.h"

namespace sdpal::mil {
namespace {

namespace fs = std::filesystem;
using coreml::MilOp;
using coreml::MilProgram;
using coreml::MilValue;

const std::string kFixtures = std::string(SDPAL_SOURCE_DIR) + "/../shared/fixtures/coreml/sd21-base-palettized/";

struct RealProgram {
  const char* name;  // for SDPAL_MIL_REAL and messages
  const char* dir;   // under kFixtures
};

const RealProgram kPrograms[] = {
    {"TextEncoder", "original/compiled/TextEncoder.mlmodelc"},
    {"Unet_original", "original/compiled/Unet.mlmodelc"},
    {"Unet_split_einsum_v2", "split_einsum_v2/compiled/Unet.mlmodelc"},
    {"VAEDecoder", "original/compiled/VAEDecoder.mlmodelc"},
    {"VAEEncoder", "original/compiled/VAEEncoder.mlmodelc"},
};

bool selected(const std::string& name) {
  const char* env = std::getenv("SDPAL_MIL_REAL");
  if (!env) return false;
  const std::string s = std::string(",") + env + ",";
  return s == ",all," || s.find("," + name + ",") != std::string::npos;
}

std::string temp_root() { return ::testing::TempDir() + "/sdpal_mil_real_" + std::to_string(::getpid()); }

// Removes this process's temporary folders after the last test.
class TempCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(temp_root(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempCleanup);

// A plausible synthetic weight.bin for `p` under a fresh temporary model folder (returned).
std::string make_model_dir(const MilProgram& p, const std::string& name) {
  const std::string dir = temp_root() + "/" + name;
  sdpal::testing::write_plausible_weights(p, dir, 1234);
  return dir;
}

Tensor random_tensor(const Shape& s, float lo, float hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}

std::map<std::string, Tensor> inputs_for(const coreml::MilFunction& f) {
  std::map<std::string, Tensor> in;
  uint32_t seed = 7;
  for (const auto& decl : f.inputs) {
    const Shape& s = decl.type.shape;
    if (decl.name == "input_ids") {  // <start> a few tokens <end> padding
      Tensor t = Tensor::empty(s);
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = i == 0 ? 49406.f : i < 6 ? float(320 + 97 * i) : 49407.f;
      in[decl.name] = t;
    } else if (decl.name == "timestep") {
      Tensor t = Tensor::empty(s);
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 981.0f;
      in[decl.name] = t;
    } else {
      in[decl.name] = random_tensor(s, -1.0f, 1.0f, seed++);
    }
  }
  return in;
}

struct RunResult {
  double seconds = 0;
  std::map<std::string, Tensor> outputs;
  std::vector<OpProfile> profile;
};

RunResult run_real(const RealProgram& rp) {
  const MilProgram p = coreml::read_mil_text_file(kFixtures + rp.dir + "/model.mil");
  const std::string dir = make_model_dir(p, rp.name);
  RunResult r;
  {
    InterpreterOptions opt;
    opt.profile = true;
    Interpreter interp(p, "main", coreml::WeightFiles::in_directory(dir), opt);
    const auto inputs = inputs_for(interp.function());
    const auto t0 = std::chrono::steady_clock::now();
    r.outputs = interp.run(inputs);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.profile = interp.profile();
    const auto& f = interp.function();
    EXPECT_EQ(r.outputs.size(), f.block.outputs.size());
    for (size_t i = 0; i < f.block.outputs.size(); ++i) {
      const std::string& name = f.block.outputs[i];
      if (!r.outputs.count(name)) {
        ADD_FAILURE() << "missing output " << name;
        continue;
      }
      const Tensor& t = r.outputs.at(name);
      // The declared type of the output variable.
      const coreml::MilType* declared = nullptr;
      for (const auto& op : f.block.ops)
        for (const auto& o : op.outputs)
          if (o.name == name) declared = &o.type;
      if (!declared) {
        ADD_FAILURE() << "no op declares output " << name;
        continue;
      }
      EXPECT_EQ(shape_str(t.shape()), shape_str(declared->shape)) << name;
      int64_t bad = 0;
      double mx = 0;
      for (int64_t k = 0; k < t.numel(); ++k) {
        if (!std::isfinite(t.f32()[k])) ++bad;
        else mx = std::max(mx, double(std::fabs(t.f32()[k])));
      }
      EXPECT_EQ(bad, 0) << name << ": " << bad << " non-finite values";
      EXPECT_GT(mx, 0.0) << name << " is all zeros";
      std::printf("[ mil real ] %s: output %s %s, max |v| %.4g\n", rp.name, name.c_str(), shape_str(t.shape()).c_str(), mx);
    }
  }
  std::string top;
  for (size_t i = 0; i < r.profile.size() && i < 6; ++i) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%s%s %.2fs (%lld)", i ? ", " : "", r.profile[i].type.c_str(), r.profile[i].seconds,
                  static_cast<long long>(r.profile[i].count));
    top += buf;
  }
  std::printf("[ mil real ] %s: %.2f s on %d threads; slowest: %s\n", rp.name, r.seconds, num_threads(), top.c_str());
  fs::remove_all(dir);
  return r;
}

TEST(MilInterpreterReal, EveryOpTypeOfTheRealProgramsIsSupported) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  for (const RealProgram& rp : kPrograms) {
    const MilProgram p = coreml::read_mil_text_file(kFixtures + rp.dir + "/model.mil");
    std::string types;
    for (const auto& [type, count] : coreml::op_type_counts(p.main())) {
      EXPECT_TRUE(Interpreter::supports(type)) << rp.name << ": " << type;
      types += (types.empty() ? "" : ", ") + type + " " + std::to_string(count);
    }
    std::printf("[ mil ops  ] %s: %s\n", rp.name, types.c_str());
    EXPECT_NO_THROW(Interpreter(p, "main", nullptr)) << rp.name;  // the constructor checks every op
  }
}

TEST(MilInterpreterReal, TextEncoderRunsOnSyntheticWeights) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  const RunResult r = run_real(kPrograms[0]);
  ASSERT_EQ(r.outputs.count("last_hidden_state"), 1u);
  EXPECT_EQ(r.outputs.at("last_hidden_state").shape(), (Shape{1, 77, 1024}));
  EXPECT_EQ(r.outputs.at("pooled_outputs").shape(), (Shape{1, 1024}));
}

class MilInterpreterRealSlow : public ::testing::TestWithParam<int> {};

// The "original" and "split_einsum_v2" UNets hold the same weights at the same weight.bin offsets
// (so the same synthetic weights) and differ in how attention is written: matmul + softmax over
// whole sequences, or per-head einsums over chunks. Two execution paths that check each other.
void compare_unets(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  double err = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    err = std::max(err, double(std::fabs(a.f32()[i] - b.f32()[i])));
    scale = std::max(scale, double(std::fabs(a.f32()[i])));
  }
  std::printf("[ mil real ] UNet original vs split_einsum_v2: max |diff| %.3g, max |v| %.3g\n", err, scale);
  EXPECT_GT(scale, 0.0);
  EXPECT_LE(err, 0.02 * scale);  // fp16 rounding happens at different points of the two graphs
}

TEST_P(MilInterpreterRealSlow, RunsOnSyntheticWeights) {
  static std::map<std::string, Tensor> unets;  // noise_pred of the UNets run so far
  const RealProgram& rp = kPrograms[GetParam()];
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  if (!selected(rp.name)) GTEST_SKIP() << "set SDPAL_MIL_REAL=all (or " << rp.name << ") to run it";
  RunResult r = run_real(rp);
  if (!r.outputs.count("noise_pred")) return;
  unets[rp.name] = r.outputs.at("noise_pred");
  if (unets.size() == 2) compare_unets(unets.at("Unet_original"), unets.at("Unet_split_einsum_v2"));
}

INSTANTIATE_TEST_SUITE_P(Programs, MilInterpreterRealSlow, ::testing::Values(1, 2, 3, 4),
                         [](const ::testing::TestParamInfo<int>& i) { return std::string(kPrograms[i.param].name); });

}  // namespace
}  // namespace sdpal::mil
