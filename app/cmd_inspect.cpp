// `sdpal inspect MODEL`: components, weight files, dtypes, parameter counts and bytes.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>

#include "args.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "io/sdpal_file.h"
#include "model/coreml_resources.h"
#include "model/diffusers_folder.h"
#include "model/model_config.h"
#include "model/sdpal_model.h"

namespace sdpal::app {
namespace fs = std::filesystem;

int inspect_coreml(const std::string& path, bool list_tensors);  // inspect_coreml.cpp

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) { b /= 1024; ++u; }
  std::ostringstream o;
  o << std::fixed << std::setprecision(u ? 1 : 0) << b << " " << units[u];
  return o.str();
}

// An sdpal file: per component every tensor with its storage (dtype, or bits and table shape) and
// bytes, then the bytes by storage.
int inspect_sdpal(const std::string& path) {
  const std::shared_ptr<const SdpalFile> f = SdpalFile::open(path);
  std::cout << "model " << path << "\nformat sdpal, version " << f->metadata("sdpal.version") << ", "
            << human_bytes(double(f->file_bytes())) << "\n";
  for (const char* key : {"sdpal.source", "sdpal.converter"})
    if (!f->metadata(key).empty()) std::cout << (key + 6) << " " << f->metadata(key) << "\n";
  struct Bucket { int64_t tensors = 0, params = 0; double bytes = 0; };
  std::map<std::string, Bucket> by_storage;
  int64_t total_params = 0;
  double total_bytes = 0;
  for (const std::string& comp : f->components()) {
    const auto file = f->component(comp);
    int64_t params = 0;
    double bytes = 0;
    std::cout << "\n" << comp << ": " << file->tensors().size() << " tensors\n";
    std::vector<const TensorView*> sorted;
    for (const TensorView& t : file->tensors()) sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(), [](const TensorView* x, const TensorView* y) { return x->name < y->name; });
    for (const TensorView* tp : sorted) {
      const TensorView& t = *tp;
      std::string storage;
      if (t.palettized) {
        storage = std::to_string(t.palettized->nbits) + "-bit palettized, LUT " + shape_str(t.palettized->lut_shape);
        by_storage[std::to_string(t.palettized->nbits) + "-bit palettized"].tensors++;
        by_storage[std::to_string(t.palettized->nbits) + "-bit palettized"].params += t.numel();
        by_storage[std::to_string(t.palettized->nbits) + "-bit palettized"].bytes += double(t.nbytes);
      } else {
        storage = dtype_name(t.dtype);
        Bucket& b = by_storage[storage];
        b.tensors++;
        b.params += t.numel();
        b.bytes += double(t.nbytes);
      }
      std::cout << "  " << t.name << " " << shape_str(t.shape) << " " << storage << ", " << human_bytes(double(t.nbytes))
                << "\n";
      params += t.numel();
      bytes += double(t.nbytes);
    }
    std::cout << "  parameters " << params << " (" << std::fixed << std::setprecision(1) << params / 1e6 << " M), "
              << human_bytes(bytes) << "\n";
    total_params += params;
    total_bytes += bytes;
  }
  std::cout << "\nbytes by storage:\n";
  for (const auto& [storage, b] : by_storage)
    std::cout << "  " << storage << ": " << b.tensors << " tensors, " << b.params << " parameters, "
              << human_bytes(b.bytes) << "\n";
  std::cout << "\ntokenizer: " << (f->metadata("sdpal.tokenizer.vocab").empty() ? "absent" : "present") << "\n";
  const std::string sched = f->metadata("sdpal.scheduler");
  const auto sj = nlohmann::json::parse(sched, nullptr, false);
  std::cout << "scheduler: "
            << (sj.is_object() && sj.contains("_class_name") && sj["_class_name"].is_string()
                    ? sj["_class_name"].get<std::string>()
                    : std::string(sched.empty() ? "absent" : "present"))
            << "\nfeature_extractor: " << (f->metadata("sdpal.feature_extractor").empty() ? "absent" : "present") << "\n";
  std::cout << "\ntotal parameters " << total_params << ", " << human_bytes(total_bytes) << "\n";
  return kExitOk;
}

}  // namespace

int run_inspect(int argc, char** argv) {
  Args a(argc, argv, 2, {}, {"--help", "--tensors"}, {{"-h", "--help"}});
  if (a.flag("--help")) {
    std::cout << "usage: sdpal inspect [--tensors] MODEL\n  lists components, dtypes, parameter counts and bytes\n"
                 "  (Core ML resources: each model's inputs, ops, palettized bits and LUTs;\n"
                 "  sdpal files: every tensor's storage, palettized bits, LUT shape and bytes);\n"
                 "  --tensors also lists every tensor\n";
    return kExitOk;
  }
  check(a.positional().size() <= 1, ErrorCode::kInvalidArgument, "inspect takes one model path");
  std::string path = a.positional().empty() ? default_model_path() : a.positional()[0];
  check(fs::exists(path), ErrorCode::kIo, "model path does not exist: " + path);
  if (looks_like_coreml_resources(path)) return inspect_coreml(path, a.flag("--tensors"));
  if (is_sdpal_file(path)) return inspect_sdpal(path);
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
