// Schedulers against diffusers 0.31.0 goldens (tests/reference/make_sched_goldens.py).
//
// Tolerances:
// - timesteps exactly, except Euler's fractional Karras timesteps (1e-4 absolute): diffusers
//   interpolates np.log of float32 sigmas, and numpy's SIMD float32 log is an ulp off for a fifth
//   of them (DPM++ rounds the same values to integers, which then match exactly);
// - sigmas and init_noise_sigma 1e-6 relative: torch's sqrt/log/exp go through MKL and are not
//   always correctly rounded;
// - samples, model inputs and add_noise 1e-5 of the tensor's largest magnitude, carrying our own
//   trajectory forward so that errors accumulate over the steps (most cases come out bit-exact);
// - alphas_cumprod bit-exact where only IEEE operations are involved.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "sched/noise_schedule.h"
#include "sched/scheduler.h"

namespace sdpal {
namespace {

using nlohmann::json;

const std::string kDir = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/sched/";
constexpr double kSigmaRtol = 1e-6;
constexpr double kSampleRtol = 1e-5;

const json& index_json() {
  static const json j = [] {
    std::ifstream in(kDir + "index.json");
    if (!in) throw std::runtime_error("cannot open " + kDir + "index.json");
    return json::parse(in);
  }();
  return j;
}

const TensorFile& golden_file(const std::string& name) {
  static std::map<std::string, std::unique_ptr<TensorFile>> files;
  auto& f = files[name];
  if (!f) f = open_safetensors(kDir + name);
  return *f;
}

Tensor golden(const std::string& file, const std::string& name) {
  const TensorView* v = golden_file(file).find(name);
  if (!v) throw std::runtime_error("golden tensor " + name + " missing from " + file);
  return to_f32(*v);
}

// Row `i` of a stacked [T, ...] golden, shaped like `like`.
Tensor row(const Tensor& stacked, int64_t i, const Shape& like) {
  return stacked.slice0(i, i + 1).reshape(like);
}

// max |a - b| / max |b|.
double rel_err(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return std::numeric_limits<double>::infinity();
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(a.f32()[i]) - double(b.f32()[i])));
    max_ref = std::max(max_ref, std::abs(double(b.f32()[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

double rel(double a, double b) { return b == 0 ? std::abs(a) : std::abs(a - b) / std::abs(b); }

// Runs while tests are registered: a missing or broken index must fail a test, not abort.
std::vector<std::string> case_names() {
  std::vector<std::string> names;
  try {
    for (const json& c : index_json().at("cases")) names.push_back(c.at("name").get<std::string>());
  } catch (const std::exception&) {
    names = {"unreadable_index"};
  }
  return names;
}

const json& find_case(const std::string& name) {
  for (const json& c : index_json().at("cases"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("no golden case " + name);
}

SamplerOptions options_of(const json& c) {
  SamplerOptions o;
  o.kind = parse_sampler_name(c.at("sampler").get<std::string>());
  o.karras = c.at("karras").get<bool>();
  o.eta = c.at("eta").get<float>();
  return o;
}

// The goldens' synthetic model: 0.1 * x + sin(t / 100) * FIXED, float32 as in torch.
Tensor fake_model(const Tensor& x, double t, const Tensor& fixed) {
  Tensor out = Tensor::empty(x.shape());
  const float s = float(std::sin(t / 100.0));
  for (int64_t i = 0; i < x.numel(); ++i) out.f32()[i] = 0.1f * x.f32()[i] + s * fixed.f32()[i];
  return out;
}

class SchedulerGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SchedulerGolden, MatchesDiffusers) {
  const json& c = find_case(GetParam());
  std::unique_ptr<Scheduler> s = make_scheduler(c.at("config"), options_of(c));
  EXPECT_EQ(s->name(), c.at("class_name").get<std::string>());
  const int steps = c.at("steps").get<int>();
  s->set_timesteps(steps);

  std::vector<double> want_t;
  for (const json& t : c.at("timesteps")) want_t.push_back(t.get<double>());
  const bool fractional_karras = s->name() == "EulerDiscreteScheduler" &&
                                 (c.at("karras").get<bool>() || c.at("config").value("use_karras_sigmas", false));
  if (fractional_karras) {
    ASSERT_EQ(s->timesteps().size(), want_t.size());
    for (size_t i = 0; i < want_t.size(); ++i) EXPECT_NEAR(s->timesteps()[i], want_t[i], 1e-4) << "timestep " << i;
  } else {
    ASSERT_EQ(s->timesteps(), want_t);
  }

  // Sigmas and init_noise_sigma.
  if (!c.at("sigmas").is_null()) {
    const auto& got = s->sigmas();
    ASSERT_EQ(got.size(), c.at("sigmas").size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(rel(got[i], c.at("sigmas")[i].get<double>()), kSigmaRtol) << "sigma " << i;
  } else {
    EXPECT_TRUE(s->sigmas().empty());
  }
  const double want_sigma0 = c.at("init_noise_sigma").get<double>();
  EXPECT_LE(rel(s->init_noise_sigma(), want_sigma0), kSigmaRtol);

  // Trajectory.
  const Tensor x0 = golden("common.safetensors", "X0");
  const Tensor fixed = golden("common.safetensors", "FIXED");
  const Tensor noise_bank = golden("common.safetensors", "NOISE");
  const std::string name = c.at("name").get<std::string>();
  const Tensor samples = golden("trajectories.safetensors", name + ".samples");
  const TensorView* inputs_view = golden_file("trajectories.safetensors").find(name + ".model_inputs");
  const Tensor inputs = inputs_view ? to_f32(*inputs_view) : Tensor();
  const Shape shape = x0.shape();
  ASSERT_EQ(samples.dim(0), int64_t(want_t.size()) + 1);

  Tensor x = x0.clone();
  const float sigma0 = s->init_noise_sigma();
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = x.f32()[i] * sigma0;
  EXPECT_LE(rel_err(x, row(samples, 0, shape)), kSampleRtol);

  double worst = 0;
  for (int i = 0; i < int(want_t.size()); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    Tensor in = x.clone();
    s->scale_model_input(in, i);
    if (inputs_view) {
      EXPECT_LE(rel_err(in, row(inputs, i, shape)), kSampleRtol);
    } else if (s->sigmas().empty()) {
      EXPECT_EQ(rel_err(in, x), 0.0);  // no scaling outside sigma space
    }
    const Tensor eps = fake_model(in, want_t[size_t(i)], fixed);
    EXPECT_EQ(s->needs_noise(i), c.at("uses_noise").get<bool>());
    Tensor noise;
    if (s->needs_noise(i)) noise = row(noise_bank, i, shape).clone();
    x = s->step(eps, i, x, s->needs_noise(i) ? &noise : nullptr);
    const double e = rel_err(x, row(samples, i + 1, shape));
    worst = std::max(worst, e);
    ASSERT_LE(e, kSampleRtol);
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", worst);
  RecordProperty("max_rel_err", buf);
}

INSTANTIATE_TEST_SUITE_P(Diffusers, SchedulerGolden, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(SchedulerGoldenTrajectory, PndmFiftyStepsCallsUnetFiftyOneTimes) {
  std::unique_ptr<Scheduler> s = make_scheduler(find_case("default_50").at("config"), {});
  s->set_timesteps(50);
  ASSERT_EQ(s->timesteps().size(), 51u);
  EXPECT_EQ(s->timesteps()[0], 981);
  EXPECT_EQ(s->timesteps()[1], 961);
  EXPECT_EQ(s->timesteps()[2], 961);
  EXPECT_EQ(s->timesteps()[50], 1);
}

TEST(SchedulerAddNoise, MatchesDiffusers) {
  const Tensor original = golden("common.safetensors", "FIXED");
  const Tensor noise = golden("common.safetensors", "X0");
  int checked = 0;
  for (const std::string& name : case_names()) {
    const TensorView* v = golden_file("trajectories.safetensors").find(name + ".add_noise_3");
    if (!v) continue;
    SCOPED_TRACE(name);
    const json& c = find_case(name);
    std::unique_ptr<Scheduler> s = make_scheduler(c.at("config"), options_of(c));
    s->set_timesteps(c.at("steps").get<int>());
    EXPECT_LE(rel_err(s->add_noise(original, noise, 3), to_f32(*v)), kSampleRtol);
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(SchedulerAlphas, CumprodMatchesTorch) {
  for (const json& a : index_json().at("alphas_cumprod")) {
    const std::string name = a.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const SchedulerConfig cfg = SchedulerConfig::from_json(a.at("config"), SamplerKind::DDIM);
    const std::vector<float> got = sched::cumprod_alphas(sched::make_betas(cfg));
    const Tensor want = golden("common.safetensors", a.at("tensor").get<std::string>());
    ASSERT_EQ(int64_t(got.size()), want.numel());
    // Linear schedules use IEEE operations only (fma linspace, square, double cumprod): exact.
    // cos comes from libm; zero-SNR takes torch's (MKL) sqrt: allow an ulp or two.
    const bool exact = name == "linear" || name == "scaled_linear";
    for (size_t i = 0; i < got.size(); ++i) {
      if (exact) ASSERT_EQ(got[i], want.f32()[i]) << "index " << i;
      else ASSERT_LE(rel(got[i], want.f32()[i]), 5e-7) << "index " << i;
    }
  }
}

// ---- configuration and argument errors -------------------------------------------------------

json sd14() { return find_case("default_10").at("config"); }

template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

const SamplerKind kAllKinds[] = {SamplerKind::PNDM, SamplerKind::DDIM, SamplerKind::Euler,
                                 SamplerKind::EulerAncestral, SamplerKind::DPMPP2M};

TEST(SchedulerErrors, UnknownBetaSchedule) {
  json cfg = sd14();
  cfg["beta_schedule"] = "cubic";
  for (SamplerKind k : kAllKinds)
    expect_error([&] { make_scheduler(cfg, {k}); }, ErrorCode::kUnsupported, "cubic");
}

TEST(SchedulerErrors, StepCountOutOfRange) {
  for (SamplerKind k : kAllKinds) {
    std::unique_ptr<Scheduler> s = make_scheduler(sd14(), {k});
    expect_error([&] { s->set_timesteps(0); }, ErrorCode::kInvalidArgument, "num_inference_steps");
    expect_error([&] { s->set_timesteps(-3); }, ErrorCode::kInvalidArgument, "num_inference_steps");
    expect_error([&] { s->set_timesteps(1001); }, ErrorCode::kInvalidArgument, "1001");
  }
}

TEST(SchedulerErrors, LeadingOffsetPastLastTrainStep) {
  // leading spacing with steps_offset 1 and 1000 steps would index alphas_cumprod[1000].
  std::unique_ptr<Scheduler> s = make_scheduler(sd14(), {SamplerKind::DDIM});
  expect_error([&] { s->set_timesteps(1000); }, ErrorCode::kInvalidArgument, "1000");
}

TEST(SchedulerErrors, TrailingSpacingQuirkIsRejected) {
  // numpy's arange(1000, 0, -1000/61) has 62 entries, the last giving timestep -1.
  json cfg = sd14();
  cfg["timestep_spacing"] = "trailing";
  std::unique_ptr<Scheduler> s = make_scheduler(cfg, {SamplerKind::DDIM});
  expect_error([&] { s->set_timesteps(61); }, ErrorCode::kInvalidArgument, "-1");
  s->set_timesteps(60);
  EXPECT_EQ(s->timesteps().size(), 60u);
}

TEST(SchedulerErrors, BadJsonTypesNameTheKey) {
  json cfg = sd14();
  cfg["beta_start"] = "small";
  expect_error([&] { make_scheduler(cfg, {}); }, ErrorCode::kFormat, "beta_start");
  cfg = sd14();
  cfg["num_train_timesteps"] = 10.5;
  expect_error([&] { make_scheduler(cfg, {}); }, ErrorCode::kFormat, "num_train_timesteps");
  expect_error([&] { make_scheduler(json::array(), {}); }, ErrorCode::kFormat, "JSON object");
}

TEST(SchedulerErrors, OtherClassesKeysAreIgnored) {
  json cfg = sd14();
  cfg["solver_type"] = "nonsense";         // a DPM key: PNDM/DDIM/Euler never look at it
  cfg["interpolation_type"] = "nonsense";  // an Euler key
  EXPECT_NO_THROW(make_scheduler(cfg, {SamplerKind::DDIM}));
  EXPECT_NO_THROW(make_scheduler(cfg, {SamplerKind::PNDM}));
  expect_error([&] { make_scheduler(cfg, {SamplerKind::DPMPP2M}); }, ErrorCode::kUnsupported, "solver_type");
  expect_error([&] { make_scheduler(cfg, {SamplerKind::Euler}); }, ErrorCode::kUnsupported, "interpolation_type");
}

TEST(SchedulerErrors, UnsupportedOptionsAndPrkMinimum) {
  json cfg = sd14();
  cfg["skip_prk_steps"] = false;
  std::unique_ptr<Scheduler> prk = make_scheduler(cfg, {});
  expect_error([&] { prk->set_timesteps(3); }, ErrorCode::kInvalidArgument, "Runge-Kutta");
  prk->set_timesteps(4);
  EXPECT_EQ(prk->timesteps().size(), 13u);  // 12 Runge-Kutta calls + 1 PLMS
  cfg = sd14();
  cfg["_class_name"] = "LMSDiscreteScheduler";
  expect_error([&] { make_scheduler(cfg, {}); }, ErrorCode::kUnsupported, "LMSDiscreteScheduler");
  EXPECT_NO_THROW(make_scheduler(cfg, {SamplerKind::Euler}));  // an explicit sampler still works
  expect_error([&] { make_scheduler(sd14(), {SamplerKind::PNDM, true}); }, ErrorCode::kInvalidArgument, "karras");
  expect_error([&] { make_scheduler(sd14(), {SamplerKind::DDIM, false, -0.5f}); }, ErrorCode::kInvalidArgument,
               "eta");
}

TEST(SchedulerErrors, SamplerNames) {
  EXPECT_EQ(parse_sampler_name("pndm"), SamplerKind::PNDM);
  EXPECT_EQ(parse_sampler_name("ddim"), SamplerKind::DDIM);
  EXPECT_EQ(parse_sampler_name("euler"), SamplerKind::Euler);
  EXPECT_EQ(parse_sampler_name("euler_a"), SamplerKind::EulerAncestral);
  EXPECT_EQ(parse_sampler_name("dpmpp_2m"), SamplerKind::DPMPP2M);
  EXPECT_EQ(parse_sampler_name("default"), SamplerKind::Default);
  expect_error([] { parse_sampler_name("heun"); }, ErrorCode::kInvalidArgument, "heun");
}

TEST(SchedulerErrors, StepMisuse) {
  const Tensor x = Tensor::zeros({1, 4, 2, 2});
  std::unique_ptr<Scheduler> s = make_scheduler(sd14(), {SamplerKind::EulerAncestral});
  expect_error([&] { s->step(x, 0, x, nullptr); }, ErrorCode::kInvalidArgument, "set_timesteps");
  s->set_timesteps(5);
  expect_error([&] { s->step(x, 1, x, nullptr); }, ErrorCode::kInvalidArgument, "out of order");
  expect_error([&] { s->step(x, 0, x, nullptr); }, ErrorCode::kInvalidArgument, "noise");
  const Tensor other = Tensor::zeros({1, 4, 2, 3});
  expect_error([&] { s->step(other, 0, x, &x); }, ErrorCode::kInvalidArgument, "shape");
}

TEST(SchedulerErrors, LoadSchedulerNamesTheFile) {
  expect_error([] { load_scheduler("/nonexistent/scheduler_config.json", {}); }, ErrorCode::kIo,
               "/nonexistent/scheduler_config.json");
  const std::string bad = ::testing::TempDir() + "bad_scheduler_config.json";
  { std::ofstream(bad) << "{ not json"; }
  expect_error([&] { load_scheduler(bad, {}); }, ErrorCode::kFormat, bad);
  const std::string unsupported = ::testing::TempDir() + "unsupported_scheduler_config.json";
  {
    json cfg = sd14();
    cfg["beta_schedule"] = "cubic";
    std::ofstream(unsupported) << cfg.dump();
  }
  expect_error([&] { load_scheduler(unsupported, {}); }, ErrorCode::kUnsupported, unsupported);
}

TEST(SchedulerState, SetTimestepsRestartsTheHistory) {
  // Running twice after set_timesteps() gives the same result (PNDM's ets, DPM's x0 history).
  const Tensor fixed = golden("common.safetensors", "FIXED");
  for (SamplerKind k : {SamplerKind::PNDM, SamplerKind::DPMPP2M}) {
    std::unique_ptr<Scheduler> s = make_scheduler(sd14(), {k});
    std::vector<Tensor> finals;
    for (int run = 0; run < 2; ++run) {
      s->set_timesteps(6);
      Tensor x = golden("common.safetensors", "X0");
      for (int i = 0; i < int(s->timesteps().size()); ++i)
        x = s->step(fake_model(x, s->timesteps()[size_t(i)], fixed), i, x, nullptr);
      finals.push_back(x);
    }
    EXPECT_EQ(rel_err(finals[0], finals[1]), 0.0);
  }
}

}  // namespace
}  // namespace sdpal
