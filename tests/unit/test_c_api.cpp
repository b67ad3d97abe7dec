// The public C API: status codes instead of exceptions, messages naming the culprit, the progress
// callback (including cancel), and identical output to the C++ pipeline.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <unistd.h>

#include "golden.h"
#include "sdpal.h"

namespace {

std::string tiny() { return sdpal::testing::repo_path("tests/fixtures/tiny-sd-v1"); }

TEST(CApi, OpenMissingModelFailsWithIoStatus) {
  sdpal_model* m = reinterpret_cast<sdpal_model*>(1);
  EXPECT_EQ(sdpal_model_open("/no/such/model", 1, &m), SDPAL_ERR_IO);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(sdpal_last_error()).find("/no/such/model"), std::string::npos) << sdpal_last_error();
  EXPECT_EQ(sdpal_model_open(nullptr, 1, &m), SDPAL_ERR_INVALID_ARGUMENT);
  sdpal_model_options o;
  sdpal_default_model_options(&o);
  o.precision = 7;
  EXPECT_EQ(sdpal_model_open_ex(tiny().c_str(), &o, &m), SDPAL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sdpal_last_error()).find("precision"), std::string::npos) << sdpal_last_error();
}

TEST(CApi, GenerateMatchesGoldenAndCancels) {
  sdpal_model* m = nullptr;
  ASSERT_EQ(sdpal_model_open(tiny().c_str(), 0, &m), SDPAL_OK) << sdpal_last_error();
  sdpal_generate_params p;
  sdpal_default_params(&p);
  EXPECT_EQ(p.steps, 50);
  EXPECT_FLOAT_EQ(p.guidance, 7.5f);
  p.prompt = "a photograph of an astronaut riding a horse";
  p.steps = 10;
  p.seed = 1234;
  p.sampler = SDPAL_SAMPLER_EULER_A;
  p.safety_checker = 1;
  int calls = 0;
  p.progress = [](int, int, void* ud) { ++*static_cast<int*>(ud); return 1; };
  p.progress_user_data = &calls;
  sdpal_result* r = nullptr;
  ASSERT_EQ(sdpal_generate(m, &p, &r), SDPAL_OK) << sdpal_last_error();
  EXPECT_EQ(calls, 11);  // before the first step and after each of 10
  ASSERT_EQ(r->count, 1);
  EXPECT_EQ(r->images[0].width, 128);
  EXPECT_EQ(r->images[0].nsfw, 0);  // this run is not flagged in the reference either
  sdpal::testing::Golden g("tests/goldens/pipeline/euler_ancestral.safetensors");
  std::vector<uint8_t> want = g.u8("image_uint8");
  size_t off = 0;
  for (size_t i = 0; i < want.size(); ++i) off += std::abs(int(r->images[0].rgb[i]) - int(want[i])) > 0;
  EXPECT_LE(double(off) / double(want.size()), 0.001);

  std::string path = "/tmp/sdpal_capi_" + std::to_string(getpid()) + ".png";
  EXPECT_EQ(sdpal_write_png(path.c_str(), &r->images[0], "test parameters"), SDPAL_OK) << sdpal_last_error();
  EXPECT_EQ(std::remove(path.c_str()), 0);
  EXPECT_EQ(sdpal_write_png("/no/such/dir/x.png", &r->images[0], nullptr), SDPAL_ERR_IO);
  sdpal_result_free(r);

  p.progress = [](int step, int, void*) { return step < 3 ? 1 : 0; };
  r = nullptr;
  EXPECT_EQ(sdpal_generate(m, &p, &r), SDPAL_ERR_CANCELLED);
  EXPECT_EQ(r, nullptr);

  p.progress = nullptr;
  p.width = 100;
  EXPECT_EQ(sdpal_generate(m, &p, &r), SDPAL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sdpal_last_error()).find("multiples of 8"), std::string::npos) << sdpal_last_error();
  p.width = 0;
  p.prompt = nullptr;
  EXPECT_EQ(sdpal_generate(m, &p, &r), SDPAL_ERR_INVALID_ARGUMENT);
  sdpal_model_free(m);
}

// The noise choices: cuda and nvidia are the same generator, one draw per batch vs one per image, so only
// the first image agrees; torch noise is another picture; an unknown value is refused by name.
TEST(CApi, NoiseSources) {
  sdpal_model* m = nullptr;
  ASSERT_EQ(sdpal_model_open(tiny().c_str(), 0, &m), SDPAL_OK) << sdpal_last_error();
  sdpal_generate_params p;
  sdpal_default_params(&p);
  EXPECT_EQ(p.rng, SDPAL_RNG_DEFAULT);
  p.prompt = "a red circle";
  p.steps = 2;
  p.seed = 3;
  p.batch = 2;
  p.safety_checker = 0;
  auto run = [&](sdpal_rng rng) {
    p.rng = rng;
    sdpal_result* r = nullptr;
    EXPECT_EQ(sdpal_generate(m, &p, &r), SDPAL_OK) << sdpal_last_error();
    std::vector<std::vector<uint8_t>> images;
    for (int i = 0; r && i < r->count; ++i)
      images.emplace_back(r->images[i].rgb, r->images[i].rgb + size_t(r->images[i].width) * r->images[i].height * 3);
    sdpal_result_free(r);
    return images;
  };
  const auto cuda = run(SDPAL_RNG_CUDA), nvidia = run(SDPAL_RNG_NVIDIA), torch = run(SDPAL_RNG_TORCH);
  ASSERT_EQ(cuda.size(), 2u);
  ASSERT_EQ(nvidia.size(), 2u);
  ASSERT_EQ(torch.size(), 2u);
  EXPECT_EQ(cuda[0], nvidia[0]);
  EXPECT_NE(cuda[1], nvidia[1]);
  EXPECT_NE(cuda[0], torch[0]);
  const int bad = 9;  // what a C caller can store in the field
  std::memcpy(&p.rng, &bad, sizeof bad);
  sdpal_result* r = nullptr;
  EXPECT_EQ(sdpal_generate(m, &p, &r), SDPAL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sdpal_last_error()).find("rng"), std::string::npos) << sdpal_last_error();
  sdpal_model_free(m);
}

}  // namespace
