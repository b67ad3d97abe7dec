// `sdpal generate`: prompt -> PNG files with A1111-style "parameters" metadata.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "args.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/mapped_file.h"
#include "core/sha256.h"
#include "io/png.h"
#include "pipeline/txt2img.h"

namespace sdpal::app {
namespace {

const char* kGenerateHelp = R"(usage: sdpal generate [-m MODEL] -p PROMPT [options]

  -m, --model PATH       diffusers model folder; Apple Core ML resources (a folder of .mlmodelc /
                         .mlpackage models with vocab.json and merges.txt, or Apple's release .zip); or an
                         original single-file checkpoint (.ckpt / .safetensors)
                         (default: the bundled model, or $SDPAL_MODEL)
      --config DIR       single-file checkpoints: diffusers config.json files per component
                         (DIR/unet/config.json, ..., DIR/tokenizer/) where the tensors cannot tell
  -p, --prompt TEXT      what to draw
  -n, --negative TEXT    what to avoid (default: empty)
      --steps N          denoising steps (default 50)
      --cfg X            classifier-free guidance scale (default 7.5; <= 1 disables guidance)
      --seed N           seed of the noise generator (default 0)
      --rng NAME         torch | numpy | cuda | nvidia: torch.randn as diffusers draws it on the CPU,
                         numpy's randn as Apple's Core ML pipelines do, torch.randn on an NVIDIA GPU
                         (diffusers with torch.Generator("cuda")), or Apple's `nvidia` source (the same
                         numbers, one draw per image) (default: torch; numpy for Core ML resources)
      --executor NAME    native | mil: Core ML models run on sdpal's native modules (default) or
                         through the MIL interpreter, program by program as written
      --sampler NAME     pndm | ddim | euler | euler_a | dpmpp_2m (default: the model's own scheduler)
      --karras           Karras sigmas (dpmpp_2m)
      --eta X            DDIM eta (default 0)
  -W, --width N          image width, a multiple of 8 (default: the model's size)
  -H, --height N         image height, a multiple of 8 (default: the model's size)
      --batch N          images from one seed, as diffusers' num_images_per_prompt (default 1)
  -o, --output FILE      PNG path (default sdpal.png; with --batch > 1, FILE-1.png, FILE-2.png, ...)
  -t, --threads N        worker threads (default: all cores)
      --no-safety-checker  do not run the model's safety checker (a warning is printed)
      --randn-path P     avx2 | scalar: which of torch's CPU normal-sampling paths to reproduce (default avx2)
      --precision P      f32 | bf16 | auto: compute precision (default auto: bf16 on CPUs with
                         AVX512-BF16/AMX, about 3x faster with half the weight memory; f32 elsewhere.
                         f32 reproduces diffusers' fp32 images within float tolerance)
      --variant NAME     load *.NAME.safetensors weights first (e.g. fp16)
      --memory MODE      low | high: low (default) prepares each network when its stage starts and gives
                         its weights back when the stage ends (text encoder, UNet, VAE, safety checker in
                         turn; Apple's reduceMemory), so the peak is the largest stage, not their sum;
                         high prepares all of them at load
      --quiet            no progress bar
)";

std::string format_seconds(double s) {
  char buf[32];
  if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

// A1111's legacy short model hash: SHA-256 of 64 KiB at offset 1 MiB of the weights file.
std::string short_model_hash(const std::string& file) {
  try {
    MappedFile m(file);
    if (m.size() < 0x100000 + 0x10000) return sha256_hex(m.data(), m.size()).substr(0, 8);
    return sha256_hex(m.data() + 0x100000, 0x10000).substr(0, 8);
  } catch (const Error&) {
    return "";
  }
}

std::string output_name(const std::string& out, int index, int count) {
  if (count == 1) return out;
  std::filesystem::path p(out);
  std::string ext = p.has_extension() ? p.extension().string() : ".png";
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(index + 1) + ext)).string();
}

// The names A1111-style tools use in their "Sampler:" field.
std::string a1111_sampler_name(const std::string& cls, bool karras) {
  std::string n = cls == "PNDMScheduler" ? "PNDM"
                  : cls == "DDIMScheduler" ? "DDIM"
                  : cls == "EulerDiscreteScheduler" ? "Euler"
                  : cls == "EulerAncestralDiscreteScheduler" ? "Euler a"
                  : cls == "DPMSolverMultistepScheduler" ? "DPM++ 2M" : cls;
  return karras ? n + " Karras" : n;
}

}  // namespace

int run_generate(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--model", "--prompt", "--negative", "--steps", "--cfg", "--seed", "--sampler", "--eta", "--width",
          "--height", "--batch", "--output", "--threads", "--randn-path", "--precision", "--variant", "--rng", "--executor", "--config",
          "--memory"},
         {"--karras", "--no-safety-checker", "--quiet", "--help"},
         {{"-m", "--model"}, {"-p", "--prompt"}, {"-n", "--negative"}, {"-W", "--width"}, {"-H", "--height"},
          {"-o", "--output"}, {"-t", "--threads"}, {"-h", "--help"}});
  if (a.flag("--help")) {
    std::cout << kGenerateHelp;
    return kExitOk;
  }
  check(a.positional().empty(), ErrorCode::kInvalidArgument, "unexpected argument '" +
        (a.positional().empty() ? std::string() : a.positional()[0]) + "' (quote the prompt and pass it with -p)");
  check(a.has("--prompt"), ErrorCode::kInvalidArgument, "--prompt is required (see sdpal generate --help)");
  GenerateParams p;
  p.prompt = a.str("--prompt");
  p.negative_prompt = a.str("--negative");
  p.steps = int(a.integer("--steps", 50, 1, 1000));
  p.guidance = float(a.number("--cfg", 7.5));
  p.seed = a.u64("--seed", 0);
  p.width = int(a.integer("--width", 0, 8, 4096));
  p.height = int(a.integer("--height", 0, 8, 4096));
  p.batch = int(a.integer("--batch", 1, 1, 64));
  p.sampler.kind = a.has("--sampler") ? parse_sampler_name(a.str("--sampler")) : SamplerKind::Default;
  p.sampler.karras = a.flag("--karras");
  p.sampler.eta = float(a.number("--eta", 0.0));
  std::string rp = a.str("--randn-path", "avx2");
  check(rp == "avx2" || rp == "scalar", ErrorCode::kInvalidArgument, "--randn-path must be avx2 or scalar");
  p.randn_path = rp == "avx2" ? RandnPath::Avx2 : RandnPath::Scalar;
  p.safety_checker = !a.flag("--no-safety-checker");
  if (a.has("--rng")) {
    const std::string rng = a.str("--rng");
    check(rng == "torch" || rng == "numpy" || rng == "cuda" || rng == "nvidia", ErrorCode::kInvalidArgument,
          "--rng must be torch, numpy, cuda or nvidia (got '" + rng + "')");
    p.noise = rng == "numpy" ? NoiseSource::kNumpy
              : rng == "cuda" ? NoiseSource::kCuda
              : rng == "nvidia" ? NoiseSource::kNvidia
                                : NoiseSource::kTorch;
  }
  const std::string executor = a.str("--executor", "native");
  check(executor == "native" || executor == "mil", ErrorCode::kInvalidArgument, "--executor must be native or mil");
  const std::string memory = a.str("--memory", "low");
  check(memory == "low" || memory == "high", ErrorCode::kInvalidArgument, "--memory must be low or high");
  const std::string out = a.str("--output", "sdpal.png");
  check(!out.empty(), ErrorCode::kInvalidArgument, "--output must not be empty");
  set_num_threads(int(a.integer("--threads", 0, 0, 1024)));

  // Fail on an unwritable output folder before spending minutes on the image.
  std::filesystem::path out_dir = std::filesystem::path(out).parent_path();
  if (out_dir.empty()) out_dir = ".";
  check(std::filesystem::is_directory(out_dir), ErrorCode::kIo, "output folder does not exist: " + out_dir.string());
  check(access(out_dir.c_str(), W_OK) == 0, ErrorCode::kIo, "output folder is not writable: " + out_dir.string());
  check(!std::filesystem::is_directory(out), ErrorCode::kIo, "output path is a folder: " + out);

  const std::string model_path = a.str("--model", default_model_path());
  LoadOptions lo;
  lo.safety_checker = p.safety_checker;
  lo.precision = parse_precision(a.str("--precision", "auto"));
  lo.variant = a.str("--variant");
  lo.executor = executor == "mil" ? Executor::kMil : Executor::kNative;
  lo.config_dir = a.str("--config");
  lo.reduce_memory = memory == "low";
  auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(model_path, lo);
  validate_params(*model, p);
  for (const std::string& w : model->warnings) std::cerr << "warning: " << w << "\n";
  if (!p.safety_checker)
    std::cerr << "warning: the safety checker is off; you are responsible for the images you make and share\n";
  else if (!model->safety_checker)
    std::cerr << "warning: this model has no safety checker; images are not checked\n";
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool quiet = a.flag("--quiet");
  const bool tty = isatty(2);
  if (!quiet) std::cerr << "loaded " << model_path << " in " << format_seconds(load_s) << "\n";

  auto start = std::chrono::steady_clock::now();
  ProgressFn progress = [&](int step, int total) {
    if (quiet) return true;
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double per = step > 0 ? el / step : 0.0;
    int width = 30, filled = total ? step * width / total : width;
    std::ostringstream line;
    line << "step " << step << "/" << total << " [" << std::string(size_t(filled), '#')
         << std::string(size_t(width - filled), ' ') << "] ";
    if (step > 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.2f s/it, ETA %s", per, format_seconds(per * (total - step)).c_str());
      line << buf;
    }
    if (tty) std::cerr << "\r" << line.str() << "   " << (step == total ? "\n" : "") << std::flush;
    else std::cerr << line.str() << "\n";
    return true;
  };
  GenerateResult r = txt2img(*model, p, progress);

  std::string hash = model->weight_files.empty() ? "" : short_model_hash(model->weight_files[0]);
  for (size_t i = 0; i < r.images.size(); ++i) {
    std::ostringstream params;
    params << p.prompt << "\n";
    if (!p.negative_prompt.empty()) params << "Negative prompt: " << p.negative_prompt << "\n";
    params << "Steps: " << p.steps << ", Sampler: " << a1111_sampler_name(r.sampler_name, p.sampler.karras)
           << ", CFG scale: " << a.str("--cfg", "7.5") << ", Seed: " << p.seed << ", Size: " << p.width << "x"
           << p.height;
    if (!hash.empty()) params << ", Model hash: " << hash;
    params << ", Model: " << model->name;
    if (p.batch > 1) params << ", Batch size: " << p.batch << ", Batch pos: " << i;
    if (p.sampler.eta != 0.f) params << ", Eta: " << a.str("--eta");
    if (lo.precision != Precision::F32) params << ", Precision: " << precision_name(lo.precision);
    switch (p.noise.value_or(model->default_noise)) {
      case NoiseSource::kNumpy: params << ", RNG: numpy"; break;
      case NoiseSource::kCuda: params << ", RNG: cuda"; break;
      case NoiseSource::kNvidia: params << ", RNG: nvidia"; break;
      case NoiseSource::kTorch: break;
    }
    if (lo.executor == Executor::kMil) params << ", Executor: mil";
    params << ", Version: sdpal 0.1.0";
    std::string name = output_name(out, int(i), int(r.images.size()));
    write_png(name, r.images[i].pixels.data(), r.images[i].width, r.images[i].height, {{"parameters", params.str()}});
    std::cout << name << (r.nsfw[i] ? "  (safety checker: flagged, image blacked out)" : "") << "\n";
  }
  if (!quiet) {
    double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "generated " << r.images.size() << " image(s) in " << format_seconds(gen_s) << "\n";
  }
  return kExitOk;
}

}  // namespace sdpal::app
