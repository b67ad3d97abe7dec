// bf16 compute mode on the tiny fixture: looser tests than the fp32 goldens, since every GEMM
// input is rounded to bfloat16 (~3 significant digits). Skipped on CPUs without native bf16.
// Tolerances: final image PSNR >= 30 dB against diffusers' fp32 image; final latents within 5e-2
// of their scale; the bf16 result must differ from fp32 (proves the bf16 kernels ran).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/precision.h"
#include "golden.h"
#include "model/diffusers_folder.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

double psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) se += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
  double mse = se / double(a.size());
  return mse == 0 ? INFINITY : 10.0 * std::log10(255.0 * 255.0 / mse);
}

TEST(PipelineBf16, CloseToDiffusersFp32) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  LoadOptions o;
  o.precision = Precision::BF16;
  auto m = load_diffusers_folder(testing::repo_path("tests/fixtures/tiny-sd-v1"), o);
  testing::Golden g("tests/goldens/pipeline/dpmpp_2m.safetensors");
  GenerateParams p;
  p.prompt = "a photograph of an astronaut riding a horse";
  p.steps = 10;
  p.seed = 1234;
  p.sampler.kind = SamplerKind::DPMPP2M;
  p.safety_checker = false;
  Tensor last;
  PipelineTaps taps;
  taps.on_step_latents = [&](int, const Tensor& l) { last = l.clone(); };
  GenerateResult r = txt2img(*m, p, {}, &taps);
  Tensor steps = g.f32("latents_steps");
  int64_t per = steps.numel() / steps.dim(0);
  Tensor want = nchw_to_nhwc(Tensor::from_data({1, 4, 16, 16}, steps.f32() + (steps.dim(0) - 1) * per));
  testing::Diff d = testing::compare(last.f32(), want.f32(), want.numel());
  EXPECT_LE(d.rel, 5e-2) << "final latents, max abs error " << d.max_abs;
  EXPECT_GT(d.max_abs, 0.0) << "bf16 run is identical to fp32: the bf16 kernels did not run";
  double db = psnr(r.images[0].pixels, g.u8("image_uint8"));
  EXPECT_GE(db, 30.0) << "PSNR " << db << " dB";
  std::cout << "bf16 vs diffusers fp32: latent max abs error " << d.max_abs << " (" << d.rel
            << " of scale), image PSNR " << db << " dB\n";
}

}  // namespace
}  // namespace sdpal
