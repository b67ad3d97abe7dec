// `sdpal inspect MODEL`: components, weight files, dtypes, parameter counts and bytes.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>

#include "args.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/diffusers_folder.h"
#include "model/model_config.h"

namespace sdpal::app {
namespace fs = std::filesystem;

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) { b /= 1024; ++u; }
  std::ostringstream o;
  o << std::fixed << std::setprecision(u ? 1 : 0) << b << " " << units[u];
  return o.str();
}

}  // namespace

int run_inspect(int argc, char** argv) {
  Args a(argc, argv, 2, {}, {"--help", "--tensors"}, {{"-h", "--help"}});
  if (a.flag("--help")) {
    std::cout << "usage: sdpal inspect [--tensors] MODEL\n  lists components, dtypes, parameter counts and bytes;\n"
                 "  --tensors also lists every tensor\n";
    return kExitOk;
  }
  check(a.positional().size() <= 1, ErrorCode::kInvalidArgument, "inspect takes one model path");
  std::string path = a.positional().empty() ? default_model_path() : a.positional()[0];
  check(fs::exists(path), ErrorCode::kIo, "model path does not exist: " + path);
  check(fs::is_regular_file(path + "/model_index.json"), ErrorCode::kModel,
        path + " is not a diffusers model folder (no model_index.json)");
  nlohmann::json index = read_json_file(path + "/model_index.json");
  std::cout << "model " << path << "\n";
  if (index.contains("_class_name")) std::cout << "pipeline " << index["_class_name"].get<std::string>() << "\n";
  int64_t total_params = 0;
  double total_bytes = 0;
  for (const char* comp : {"text_encoder", "unet", "vae", "safety_checker"}) {
    if (!fs::is_directory(path + "/" + comp)) {
      std::cout << "\n" << comp << ": absent\n";
      continue;
    }
    int64_t params = 0;
    double bytes = 0;
    std::map<std::string, int64_t> by_dtype;
    std::cout << "\n" << comp << ":\n";
    for (const auto& f : find_component_weights(path + "/" + comp, "")) {
      auto file = open_safetensors(f);
      std::cout << "  file " << fs::relative(f, path).string() << " (" << file->tensors().size() << " tensors)\n";
      for (const auto& t : file->tensors()) {
        params += t.numel();
        bytes += double(t.nbytes);
        by_dtype[dtype_name(t.dtype)] += t.numel();
        if (a.flag("--tensors"))
          std::cout << "    " << t.name << " " << dtype_name(t.dtype) << " " << shape_str(t.shape) << "\n";
      }
    }
    std::cout << "  parameters " << params << " (" << std::fixed << std::setprecision(1) << params / 1e6 << " M), "
              << human_bytes(bytes) << "\n  dtypes";
    for (const auto& [d, n] : by_dtype) std::cout << " " << d << ":" << n;
    std::cout << "\n";
    total_params += params;
    total_bytes += bytes;
  }
  for (const char* comp : {"tokenizer", "scheduler", "feature_extractor"})
    std::cout << "\n" << comp << ": " << (fs::is_directory(path + "/" + comp) ? "present" : "absent") << "\n";
  if (fs::is_regular_file(path + "/scheduler/scheduler_config.json")) {
    auto s = read_json_file(path + "/scheduler/scheduler_config.json");
    if (s.contains("_class_name")) std::cout << "  " << s["_class_name"].get<std::string>() << "\n";
  }
  std::cout << "\ntotal parameters " << total_params << ", " << human_bytes(total_bytes) << "\n";
  return kExitOk;
}

}  // namespace sdpal::app
