// LoadOptions::reduce_memory (model/lazy_networks.h): networks prepared on first use and released
// after their stage draw exactly the pictures of networks prepared at load, from every loader
// (diffusers folder, sdpal file, original checkpoint, Core ML resources with both executors), and
// after a generation no network holds its prepared weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"
#include "golden.h"
#include "model/diffusers_folder.h"
#include "model/lazy_networks.h"
#include "model/ldm_checkpoint.h"
#include "model/sdpal_model.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

namespace fs = std::filesystem;
using testing::repo_path;

GenerateParams params(bool checker) {
  GenerateParams p;
  p.prompt = "a red circle on a blue background";
  p.negative_prompt = "blurry";
  p.steps = 3;
  p.seed = 7;
  p.safety_checker = checker;
  return p;
}

template <class Lazy, class Net>
bool prepared(const std::unique_ptr<Net>& net) {
  const auto* lazy = dynamic_cast<const Lazy*>(net.get());
  EXPECT_NE(lazy, nullptr) << "reduce_memory must give lazy networks";
  return lazy && lazy->prepared();
}

void expect_nothing_prepared(const StableDiffusionModel& m, const std::string& what) {
  EXPECT_TRUE(m.reduce_memory) << what;
  EXPECT_FALSE(prepared<LazyTextEncoder>(m.text_encoder)) << what;
  EXPECT_FALSE(prepared<LazyUNet>(m.unet)) << what;
  EXPECT_FALSE(prepared<LazyVaeDecoder>(m.vae)) << what;
  if (m.safety_checker) {
    EXPECT_FALSE(prepared<LazySafetyChecker>(m.safety_checker)) << what;
  }
}

// Loads `load(false)` and `load(true)`, generates with each (the lazy one twice) and compares.
void expect_same_pictures(const std::function<std::unique_ptr<StableDiffusionModel>(bool)>& load,
                          const std::string& what, bool checker = false) {
  auto eager = load(false);
  auto lazy = load(true);
  EXPECT_FALSE(eager->reduce_memory);
  expect_nothing_prepared(*lazy, what + " (after load)");
  EXPECT_EQ(lazy->default_size(), eager->default_size()) << what;
  const GenerateResult want = txt2img(*eager, params(checker));
  for (int run = 0; run < 2; ++run) {
    const GenerateResult got = txt2img(*lazy, params(checker));
    ASSERT_EQ(got.images.size(), want.images.size()) << what;
    EXPECT_EQ(got.images[0].pixels, want.images[0].pixels) << what << " run " << run;
    EXPECT_EQ(got.nsfw, want.nsfw) << what;
    EXPECT_EQ(got.safety_checked, want.safety_checked) << what;
    expect_nothing_prepared(*lazy, what + " (after generating)");
  }
}

TEST(ReduceMemory, DiffusersFolderWithSafetyChecker) {
  const std::string dir = repo_path("tests/fixtures/tiny-sd-v1");
  expect_same_pictures(
      [&](bool lazy) {
        LoadOptions o;
        o.reduce_memory = lazy;
        auto m = load_model(dir, o);
        EXPECT_NE(m->safety_checker, nullptr);
        return m;
      },
      "diffusers folder", /*checker=*/true);
}

TEST(ReduceMemory, OriginalCheckpoint) {
  const std::string ckpt = repo_path("tests/fixtures/tiny-sd-v1-ldm/tiny-sd-v1.safetensors");
  const std::string config = repo_path("tests/fixtures/tiny-sd-v1");
  expect_same_pictures(
      [&](bool lazy) {
        LoadOptions o;
        o.reduce_memory = lazy;
        o.safety_checker = false;
        return load_ldm_checkpoint(ckpt, o, config);
      },
      "checkpoint");
}

TEST(ReduceMemory, SdpalFile) {
  const fs::path out = fs::temp_directory_path() / ("sdpal-reduce-memory-" + std::to_string(::getpid()) + ".safetensors");
  ConvertOptions co;
  co.nbits = 6;
  convert_to_sdpal(read_diffusers_source(repo_path("tests/fixtures/tiny-sd-v1"), "", false), out.string(), co);
  expect_same_pictures(
      [&](bool lazy) {
        LoadOptions o;
        o.reduce_memory = lazy;
        return load_model(out.string(), o);
      },
      "sdpal file");
  fs::remove(out);
}

TEST(ReduceMemory, CoreMLBothExecutors) {
  const std::string dir = repo_path("tests/fixtures/tiny-sd-v1-coreml/palettized6-chunked");
  for (Executor e : {Executor::kNative, Executor::kMil})
    expect_same_pictures(
        [&](bool lazy) {
          LoadOptions o;
          o.reduce_memory = lazy;
          o.executor = e;
          return load_model(dir, o);
        },
        e == Executor::kMil ? "core ml (mil)" : "core ml (native)");
}

// A weight error of a lazy network surfaces when it first runs, with the same message.
TEST(ReduceMemory, WeightErrorsSurfaceOnFirstUse) {
  const fs::path dir = fs::temp_directory_path() / ("sdpal-reduce-memory-bad-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(repo_path("tests/fixtures/tiny-sd-v1"), dir, fs::copy_options::recursive);
  for (const auto& f : fs::directory_iterator(dir / "unet"))
    if (f.path().extension() == ".safetensors") fs::resize_file(f.path(), 100);  // header claims more
  LoadOptions o;
  o.reduce_memory = true;
  o.safety_checker = false;
  auto m = load_model(dir.string(), o);  // configs only: loads
  try {
    txt2img(*m, params(false));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "unet").string()), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sdpal
