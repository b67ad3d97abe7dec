// Every MIL op the interpreter implements against numpy / torch: tests/goldens/mil/ops.json holds
// one small program per case, ops.safetensors its inputs and expected outputs (made by
// tests/goldens/mil/make_mil_goldens.py).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "golden.h"
#include "io/coreml/mil_text.h"
#include "mil/interpreter.h"

namespace sdpal::mil {
namespace {

nlohmann::json load_cases() {
  std::ifstream f(testing::repo_path("tests/goldens/mil/ops.json"));
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// Largest |got - want| over the reference's largest finite magnitude; equal infinities agree.
double rel_error(const Tensor& got, const Tensor& want, int64_t* worst) {
  double max_abs = 0, scale = 0;
  *worst = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.f32()[i], w = want.f32()[i];
    if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
    const double e = (g == w) ? 0.0 : std::fabs(g - w);
    if (!(e <= max_abs)) {
      max_abs = std::isnan(e) ? INFINITY : e;
      *worst = i;
    }
  }
  return scale > 0 ? max_abs / scale : max_abs;
}

TEST(MilInterpreterOps, MatchNumpyGoldens) {
  const nlohmann::json cases = load_cases();
  const testing::Golden golden("tests/goldens/mil/ops.safetensors");
  std::set<std::string> covered;
  int run = 0;
  for (auto it = cases.begin(); it != cases.end(); ++it) {
    const std::string name = it.key();
    const nlohmann::json& c = it.value();
    SCOPED_TRACE(name);
    coreml::MilProgram p;
    try {
      p = coreml::parse_mil_text(c["program"].get<std::string>(), name + ".mil");
      coreml::validate(p);
    } catch (const Error& e) {
      ADD_FAILURE() << "program does not parse: " << e.what() << "\n" << c["program"].get<std::string>();
      continue;
    }
    for (const auto& op : p.main().block.ops) covered.insert(op.type);
    std::map<std::string, Tensor> inputs;
    for (const auto& in : c["inputs"]) inputs[in.get<std::string>()] = golden.f32(name + "/" + in.get<std::string>());
    std::map<std::string, Tensor> outputs;
    try {
      Interpreter interp(p, "main", nullptr);
      outputs = interp.run(inputs);
    } catch (const Error& e) {
      ADD_FAILURE() << "run failed: " << e.what();
      continue;
    }
    const double tol = c["tol"].get<double>();
    for (const auto& out : c["outputs"]) {
      const std::string o = out.get<std::string>();
      const Tensor want = golden.f32(name + "/" + o);
      ASSERT_TRUE(outputs.count(o)) << o;
      const Tensor& got = outputs.at(o);
      ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << o;
      int64_t worst;
      const double err = rel_error(got, want, &worst);
      EXPECT_LE(err, tol) << o << ": relative error " << err << " at " << worst << " (got " << got.f32()[worst] << ", want "
                          << want.f32()[worst] << ")";
    }
    ++run;
  }
  EXPECT_EQ(run, int(cases.size()));
  // Every op type the interpreter implements has at least one golden.
  for (const std::string& t : Interpreter::supported_ops()) EXPECT_TRUE(covered.count(t)) << "no golden case for " << t;
  std::printf("[ mil ops  ] %d cases, %zu op types\n", run, covered.size());
}

}  // namespace
}  // namespace sdpal::mil
