// The sdpal command: dispatch to subcommands; every error becomes one line on stderr and an exit code.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>

#include "args.h"
#include "core/error.h"

namespace sdpal::app {

int run_convert(int argc, char** argv);  // cmd_convert.cpp
int run_quality(int argc, char** argv);  // cmd_quality.cpp

// $SDPAL_MODEL, else the bundled demo model (models/sdpal-shapes-64, demo/README.md) once it is in
// the tree, else the tiny random test fixture.
std::string default_model_path() {
  if (const char* env = std::getenv("SDPAL_MODEL"); env && *env) return env;
  const std::string demo = std::string(SDPAL_SOURCE_DIR) + "/models/sdpal-shapes-64";
  if (std::filesystem::is_regular_file(demo + "/model_index.json")) return demo;
  return std::string(SDPAL_SOURCE_DIR) + "/tests/fixtures/tiny-sd-v1";
}

namespace {

const char* kHelp = R"(sdpal: Stable Diffusion text-to-image on the CPU

usage: sdpal <command> [options]     (sdpal <command> --help for details)

commands:
  generate   prompt -> PNG image(s)
  inspect    list a model's components, dtypes, parameter counts and bytes
  tokenize   print CLIP token ids of prompts
  bench      time each component at a size, against PyTorch on the same weights
  convert    a diffusers folder or checkpoint -> one sdpal .safetensors file, optionally palettized
  quality    per-layer weight SNR and end-to-end image PSNR of a palettized file vs its source

exit codes:
  0 success            2 invalid argument     3 file I/O error
  4 bad model/file     5 cancelled            6 unsupported   1 internal error
)";

int exit_code(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kIo: return kExitIo;
    case ErrorCode::kFormat: case ErrorCode::kModel: return kExitModel;
    case ErrorCode::kCancelled: return kExitCancelled;
    case ErrorCode::kUnsupported: return kExitUnsupported;
    case ErrorCode::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

}  // namespace
}  // namespace sdpal::app

int main(int argc, char** argv) {
  using namespace sdpal::app;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::cout << kHelp;
    return argc < 2 ? kExitUsage : kExitOk;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "generate") return run_generate(argc, argv);
    if (cmd == "inspect") return run_inspect(argc, argv);
    if (cmd == "tokenize") return run_tokenize(argc, argv);
    if (cmd == "bench") return run_bench(argc, argv);
    if (cmd == "convert") return run_convert(argc, argv);
    if (cmd == "quality") return run_quality(argc, argv);
    if (cmd == "--version" || cmd == "version") {
      std::cout << "sdpal 0.1.0\n";
      return kExitOk;
    }
    std::cerr << "sdpal: unknown command '" << cmd << "' (see sdpal --help)\n";
    return kExitUsage;
  } catch (const sdpal::Error& e) {
    std::cerr << "sdpal " << cmd << ": error: " << e.what() << "\n";
    return exit_code(e.code());
  } catch (const std::bad_alloc&) {
    std::cerr << "sdpal " << cmd << ": error: out of memory\n";
    return kExitInternal;
  } catch (const std::exception& e) {
    std::cerr << "sdpal " << cmd << ": error: " << e.what() << "\n";
    return kExitInternal;
  }
}
