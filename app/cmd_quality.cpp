// `sdpal quality`: how much a palettized sdpal file loses against the model it came from:
// per-layer weight SNR, then the PSNR between the images both make from the same prompt and seed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "args.h"
#include "core/error.h"
#include "io/png.h"
#include "io/sdpal_file.h"
#include "model/sdpal_model.h"
#include "pipeline/txt2img.h"
#include "quant/palettize.h"

namespace sdpal::app {
namespace fs = std::filesystem;

namespace {

const char* kQualityHelp = R"(usage: sdpal quality -m REFERENCE --against PALETTIZED [options]

  Compares a palettized sdpal file with the model it was converted from:
  1. the signal-to-noise ratio of every palettized weight against the reference's,
     10*log10(sum w^2 / sum (w - w_palettized)^2) in dB, worst first, with min / median;
  2. the PSNR between the images both models generate from the same prompt, seed and steps.

  -m, --model PATH       the reference: a diffusers folder or an (unpalettized) sdpal file
      --against FILE     the palettized sdpal file
  -p, --prompt TEXT      prompt of the end-to-end comparison (default: "a photograph of an
                         astronaut riding a horse")
      --seed N           seed (default 0)
      --steps N          denoising steps (default 20)
      --cfg X            guidance scale (default 7.5)
  -W, --width N / -H, --height N   image size (default: the model's)
      --top N            worst layers listed (default 20)
      --precision P      f32 | bf16 | auto (default f32: differences are the weights' alone)
      --save PREFIX      also write PREFIX-reference.png and PREFIX-palettized.png
      --weights-only     skip the image comparison
)";

struct LayerSnr {
  double snr;
  std::string name, storage;
  Shape shape;
};

// The reference's tensors, per component.
std::map<std::string, std::vector<std::shared_ptr<TensorFile>>> reference_tensors(const std::string& ref) {
  const ModelSource src = fs::is_directory(ref) ? read_diffusers_source(ref, "", true) : read_sdpal_source(ref, true);
  std::map<std::string, std::vector<std::shared_ptr<TensorFile>>> out;
  for (const auto& c : src.components) out[c.name] = c.files;
  return out;
}

std::unique_ptr<StableDiffusionModel> load_any(const std::string& path, const LoadOptions& lo) {
  if (is_sdpal_file(path)) return load_sdpal_file(path, lo);
  return load_model(path, lo);
}

std::string fmt_db(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

int run_quality(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--model", "--against", "--prompt", "--seed", "--steps", "--cfg", "--width", "--height", "--top", "--precision",
          "--save"},
         {"--weights-only", "--help"},
         {{"-m", "--model"}, {"-p", "--prompt"}, {"-W", "--width"}, {"-H", "--height"}, {"-h", "--help"}});
  if (a.flag("--help")) {
    std::cout << kQualityHelp;
    return kExitOk;
  }
  check(a.positional().empty(), ErrorCode::kInvalidArgument,
        "unexpected argument '" + (a.positional().empty() ? std::string() : a.positional()[0]) + "'");
  check(a.has("--model"), ErrorCode::kInvalidArgument, "--model (the reference) is required (see sdpal quality --help)");
  check(a.has("--against"), ErrorCode::kInvalidArgument, "--against (the palettized file) is required");
  const std::string ref = a.str("--model"), pal = a.str("--against");
  GenerateParams p;
  p.prompt = a.str("--prompt", "a photograph of an astronaut riding a horse");
  p.seed = a.u64("--seed", 0);
  p.steps = int(a.integer("--steps", 20, 1, 1000));
  p.guidance = float(a.number("--cfg", 7.5));
  p.width = int(a.integer("--width", 0, 8, 4096));
  p.height = int(a.integer("--height", 0, 8, 4096));
  p.safety_checker = false;
  const int top = int(a.integer("--top", 20, 0, 1000000));
  LoadOptions lo;
  lo.safety_checker = false;
  lo.precision = parse_precision(a.str("--precision", "f32"));
  check(fs::exists(ref), ErrorCode::kIo, "model path does not exist: " + ref);
  check(fs::exists(pal), ErrorCode::kIo, "model path does not exist: " + pal);
  check(is_sdpal_file(pal), ErrorCode::kModel, pal + " is not an sdpal file (see sdpal convert)");

  // 1. Weights.
  {
    const std::shared_ptr<const SdpalFile> f = SdpalFile::open(pal);
    const auto refs = reference_tensors(ref);
    std::vector<LayerSnr> layers;
    for (const auto& [full, info] : f->palettized()) {
      const std::string comp = full.substr(0, full.find('.'));
      const std::string name = full.substr(comp.size() + 1);
      const TensorView* w = nullptr;
      auto it = refs.find(comp);
      if (it != refs.end())
        for (const auto& file : it->second)
          if ((w = file->find(name))) break;
      check(w != nullptr, ErrorCode::kModel, ref + ": has no tensor '" + name + "' in " + comp + " to compare " + full + " with");
      check(w->shape == info.shape, ErrorCode::kModel,
            ref + ": tensor '" + full + "' has shape " + shape_str(w->shape) + ", the palettized one " + shape_str(info.shape));
      const TensorView* q = f->component(comp)->find(name);
      check(q != nullptr, ErrorCode::kInternal, pal + ": lost tensor '" + full + "'");
      const Tensor rw = to_f32(*w), qw = to_f32(*q);
      layers.push_back({snr_db(rw.f32(), qw.f32(), rw.numel()), full,
                        std::to_string(info.nbits) + "-bit, LUT " + shape_str(info.lut_shape), info.shape});
    }
    std::sort(layers.begin(), layers.end(), [](const LayerSnr& x, const LayerSnr& y) {
      return x.snr != y.snr ? x.snr < y.snr : x.name < y.name;
    });
    if (layers.empty()) {
      std::cout << pal << " has no palettized tensors\n";
    } else {
      std::cout << "weight SNR of " << layers.size() << " palettized tensors of " << pal << " against " << ref
                << " (dB, worst first):\n";
      for (int i = 0; i < top && i < int(layers.size()); ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%8s  ", fmt_db(layers[size_t(i)].snr).c_str());
        std::cout << buf << layers[size_t(i)].name << " " << shape_str(layers[size_t(i)].shape) << " ("
                  << layers[size_t(i)].storage << ")\n";
      }
      const size_t n = layers.size();
      const double median = n % 2 ? layers[n / 2].snr : (layers[n / 2 - 1].snr + layers[n / 2].snr) / 2;
      std::cout << "weight SNR: min " << fmt_db(layers.front().snr) << " dB, median " << fmt_db(median) << " dB, max "
                << fmt_db(layers.back().snr) << " dB over " << n << " tensors\n";
    }
  }
  if (a.flag("--weights-only")) return kExitOk;

  // 2. Images, one model at a time (only one is resident).
  auto run = [&](const std::string& path) {
    auto model = load_any(path, lo);
    GenerateParams q = p;
    validate_params(*model, q);
    GenerateResult r = txt2img(*model, q);
    check(!r.images.empty(), ErrorCode::kInternal, path + ": no image generated");
    return r.images.front();
  };
  const auto t0 = std::chrono::steady_clock::now();
  const RgbImage ri = run(ref);
  const RgbImage pi = run(pal);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check(ri.width == pi.width && ri.height == pi.height, ErrorCode::kModel,
        "the two models made images of different sizes (" + std::to_string(ri.width) + "x" + std::to_string(ri.height) +
            " and " + std::to_string(pi.width) + "x" + std::to_string(pi.height) + ")");
  double se = 0;
  int max_diff = 0;
  for (size_t i = 0; i < ri.pixels.size(); ++i) {
    const int d = int(ri.pixels[i]) - int(pi.pixels[i]);
    se += double(d) * d;
    max_diff = std::max(max_diff, std::abs(d));
  }
  const double mse = se / double(ri.pixels.size());
  const double psnr = mse == 0 ? INFINITY : 10.0 * std::log10(255.0 * 255.0 / mse);
  if (a.has("--save")) {
    const std::string prefix = a.str("--save");
    write_png(prefix + "-reference.png", ri.pixels.data(), ri.width, ri.height);
    write_png(prefix + "-palettized.png", pi.pixels.data(), pi.width, pi.height);
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "end-to-end PSNR %s dB (max pixel difference %d; %dx%d, %d steps, seed %llu, %s, %.1f s)",
                fmt_db(psnr).c_str(), max_diff, ri.width, ri.height, p.steps, (unsigned long long)p.seed,
                precision_name(lo.precision), secs);
  std::cout << buf << "\n";
  return kExitOk;
}

}  // namespace sdpal::app
