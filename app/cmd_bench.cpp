// `sdpal bench`: per-component wall time, GFLOP/s and peak RSS on a model at a given size, with
// PyTorch run on the same weights in the same invocation for the ratio.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "args.h"
#include "core/error.h"
#include "core/flop_counter.h"
#include "core/threads.h"
#include "io/image_preprocess.h"
#include "io/safetensors.h"
#include "pipeline/txt2img.h"

namespace sdpal::app {
namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

struct Timing {
  std::string name;
  double median_s = 0, gflop = 0;
};

template <typename F>
Timing measure(const std::string& name, int runs, F&& fn) {
  fn();  // warm-up: primitive creation, weight reorders, page faults
  std::vector<double> t;
  int64_t flops = 0;
  for (int i = 0; i < runs; ++i) {
    flop_counter().store(0);
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    flops = flop_counter().load();
  }
  std::sort(t.begin(), t.end());
  return Timing{name, t[t.size() / 2], double(flops) / 1e9};
}

}  // namespace

int run_bench(int argc, char** argv) {
  Args a(argc, argv, 2, {"--model", "--width", "--height", "--runs", "--threads", "--torch", "--json", "--check-unet", "--precision"},
         {"--help", "--no-torch", "--torch-bf16"}, {{"-m", "--model"}, {"-W", "--width"}, {"-H", "--height"}, {"-t", "--threads"}});
  if (a.flag("--help")) {
    std::cout << R"(usage: sdpal bench [-m MODEL] [-W 512] [-H 512] [--runs 3] [-t THREADS] [--torch PYTHON | --no-torch]
                   [--json OUT] [--check-unet DUMP.safetensors] [--precision f32|bf16|auto (default auto)]
                   [--torch-bf16]
  Times text encoder (batch 2), one CFG UNet step (batch 2), VAE decode and safety checker (batch 1):
  median of --runs after a warm-up, achieved GFLOP/s, peak RSS. With --torch (default python3), runs
  bench/pytorch_reference.py on the same model and thread count and prints the ratio (--torch-bf16:
  PyTorch under bf16 autocast instead of fp32).
  --check-unet FILE: PyTorch dumps one UNet evaluation (inputs and output) to FILE and sdpal checks
  its own evaluation of the same inputs against it (tolerance 1e-4 relative to the output's scale);
  with --no-torch, FILE must already exist.
)";
    return kExitOk;
  }
  const std::string path = a.str("--model", default_model_path());
  const int runs = int(a.integer("--runs", 3, 1, 100));
  const int threads = int(a.integer("--threads", 0, 0, 1024));
  set_num_threads(threads);
  const int nthreads = num_threads();

  auto t0 = std::chrono::steady_clock::now();
  LoadOptions lo;
  lo.precision = parse_precision(a.str("--precision", "auto"));
  auto model = load_model(path, lo);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int width = int(a.integer("--width", model->default_size(), 8, 4096));
  const int height = int(a.integer("--height", model->default_size(), 8, 4096));
  GenerateParams gp;
  gp.prompt = "x";
  gp.width = width;
  gp.height = height;
  validate_params(*model, gp);
  std::cerr << "model " << path << " loaded in " << std::fixed << std::setprecision(2) << load_s << " s, "
            << nthreads << " threads, " << width << "x" << height << "\n";

  nlohmann::json report;
  std::vector<Timing> rows;
  Tensor ctx;
  rows.push_back(measure("text_encoder_b2", runs, [&] {
    ctx = encode_prompts(*model, {"", "a photograph of an astronaut riding a horse"});
  }));
  const int f = model->vae_scale_factor();
  TorchGenerator gen(0);
  Tensor latents = nchw_to_nhwc(gen.randn({2, model->unet->config().in_channels, height / f, width / f}));
  rows.push_back(measure("unet_cfg_step_b2", runs, [&] { model->unet->forward(latents, 981.f, ctx); }));
  Tensor one = latents.slice0(0, 1).clone();
  Tensor img;
  rows.push_back(measure("vae_decode_b1", runs, [&] { img = model->vae->forward(one); }));
  if (model->safety_checker) {
    std::vector<RgbImage> rgb = to_rgb8(img);
    rows.push_back(measure("safety_checker_b1", runs, [&] {
      Tensor px = clip_preprocess(rgb[0].pixels.data(), width, height, model->feature_extractor);
      model->safety_checker->check(px);
    }));
  }
  const double rss = peak_rss_mib();

  nlohmann::json torch;
  if (!a.flag("--no-torch")) {
    std::string py = a.str("--torch", "python3");
    std::string out = "/tmp/sdpal-bench-torch-" + std::to_string(::getpid()) + ".json";
    std::string cmd = py + " " + std::string(SDPAL_SOURCE_DIR) + "/bench/pytorch_reference.py '" + path +
                      "' --threads " + std::to_string(nthreads) + " --height " + std::to_string(height) +
                      " --width " + std::to_string(width) + " --runs " + std::to_string(runs) + " --json " + out;
    // The reference also dumps one UNet evaluation for --check-unet to compare against.
    if (a.has("--check-unet")) cmd += " --dump-unet '" + a.str("--check-unet") + "'";
    if (a.flag("--torch-bf16")) cmd += " --bf16";  // PyTorch under torch.autocast("cpu", bfloat16)
    cmd += " 1>&2";
    std::cerr << "running PyTorch: " << cmd << "\n";
    if (std::system(cmd.c_str()) == 0) {
      std::ifstream in(out);
      try {
        torch = nlohmann::json::parse(in);
      } catch (const std::exception& e) {
        std::cerr << "warning: could not read PyTorch results: " << e.what() << "\n";
      }
      std::remove(out.c_str());
    } else {
      std::cerr << "warning: the PyTorch reference failed; reporting sdpal alone\n";
    }
  }

  std::cout << "| component | sdpal median (s) | GFLOP | GFLOP/s | PyTorch median (s) | speed-up vs PyTorch |\n"
            << "|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    double tt = 0;
    if (torch.is_object() && torch.contains("stages") && torch["stages"].contains(r.name))
      tt = torch["stages"][r.name].value("median_s", 0.0);
    std::cout << std::fixed << "| " << r.name << " | " << std::setprecision(3) << r.median_s << " | " << std::setprecision(1)
              << r.gflop << " | " << (r.median_s > 0 ? r.gflop / r.median_s : 0) << " | ";
    if (tt > 0) std::cout << std::setprecision(3) << tt << " | " << std::setprecision(2) << tt / r.median_s << "x |\n";
    else std::cout << "- | - |\n";
    report["components"][r.name] = {{"median_s", r.median_s}, {"gflop", r.gflop}};
  }
  std::cout << std::fixed << "\nsdpal peak RSS: " << std::setprecision(0) << rss << " MiB";
  if (torch.is_object() && torch.contains("peak_rss_mib"))
    std::cout << "; PyTorch peak RSS: " << torch["peak_rss_mib"].get<double>() << " MiB";
  std::cout << "\n";
  report["peak_rss_mib"] = rss;
  report["threads"] = nthreads;
  report["precision"] = precision_name(lo.precision);
  report["width"] = width;
  report["height"] = height;
  report["torch"] = torch;

  if (a.has("--check-unet")) {
    auto dump = open_safetensors(a.str("--check-unet"));
    auto get = [&](const char* n) {
      const TensorView* v = dump->find(n);
      check(v != nullptr, ErrorCode::kFormat, a.str("--check-unet") + ": missing tensor " + n);
      return to_f32(*v);
    };
    const TensorView* tv = dump->find("timestep");
    check(tv && tv->dtype == DType::I64 && tv->numel() == 1, ErrorCode::kFormat, "dump: bad timestep");
    int64_t t;
    std::memcpy(&t, tv->data, 8);
    Tensor pred = model->unet->forward(nchw_to_nhwc(get("sample")), float(t), get("encoder_hidden_states"));
    Tensor want = nchw_to_nhwc(get("noise_pred"));
    double max_abs = 0, scale = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      max_abs = std::max(max_abs, double(std::fabs(pred.f32()[i] - want.f32()[i])));
      scale = std::max(scale, double(std::fabs(want.f32()[i])));
    }
    std::cout << "UNet vs PyTorch: max abs error " << std::scientific << max_abs << ", relative to scale "
              << max_abs / scale << "\n";
    report["unet_check"] = {{"max_abs", max_abs}, {"relative", max_abs / scale}};
    if (lo.precision == Precision::F32 && !(max_abs / scale <= 1e-4)) {
      std::cerr << "UNet check FAILED (tolerance 1e-4 relative)\n";
      return kExitInternal;
    }
  }
  if (a.has("--json")) {
    std::ofstream o(a.str("--json"));
    check(bool(o), ErrorCode::kIo, "cannot write " + a.str("--json"));
    o << report.dump(2) << "\n";
  }
  return kExitOk;
}

}  // namespace sdpal::app
