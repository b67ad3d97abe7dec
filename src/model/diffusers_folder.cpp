#include "model/diffusers_folder.h"

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/coreml_resources.h"
#include "model/lazy_networks.h"
#include "model/ldm_checkpoint.h"
#include "model/sdpal_model.h"
#include "model/model_config.h"

namespace sdpal {
namespace fs = std::filesystem;

std::vector<std::string> find_component_weights(const std::string& dir, const std::string& variant) {
  check(fs::is_directory(dir), ErrorCode::kModel, "missing component folder " + dir);
  std::vector<std::string> stems{"diffusion_pytorch_model", "model"};
  std::vector<std::string> variants;
  if (!variant.empty()) variants.push_back("." + variant);
  variants.push_back("");
  if (variant.empty()) variants.push_back(".fp16");
  for (const auto& v : variants) {
    for (const auto& stem : stems) {
      fs::path single = fs::path(dir) / (stem + v + ".safetensors");
      if (fs::is_regular_file(single)) return {single.string()};
      fs::path index = fs::path(dir) / (stem + ".safetensors.index" + v + ".json");
      if (!fs::is_regular_file(index)) index = fs::path(dir) / (stem + v + ".safetensors.index.json");
      if (fs::is_regular_file(index)) {
        nlohmann::json j = read_json_file(index.string());
        check(j.contains("weight_map") && j["weight_map"].is_object(), ErrorCode::kFormat,
              index.string() + ": missing weight_map");
        std::vector<std::string> files;
        for (const auto& [name, file] : j["weight_map"].items()) {
          check(file.is_string(), ErrorCode::kFormat, index.string() + ": bad entry for " + name);
          std::string f = file.get<std::string>();
          check(f.find('/') == std::string::npos && f.find("..") == std::string::npos, ErrorCode::kFormat,
                index.string() + ": shard name '" + f + "' must be a plain file name");
          std::string full = (fs::path(dir) / f).string();
          if (std::find(files.begin(), files.end(), full) == files.end()) files.push_back(full);
        }
        return files;
      }
    }
  }
  fail(ErrorCode::kModel, "no .safetensors weights in " + dir +
                              " (expected diffusion_pytorch_model.safetensors or model.safetensors)");
}

namespace {

WeightBinder open_component(const std::string& root, const std::string& comp, const std::string& variant,
                            Precision precision) {
  std::vector<std::shared_ptr<TensorFile>> files;
  for (const auto& f : find_component_weights(root + "/" + comp, variant)) files.push_back(open_safetensors(f));
  WeightBinder binder(comp, std::move(files));
  binder.set_precision(precision);
  return binder;
}

}  // namespace

std::unique_ptr<StableDiffusionModel> load_diffusers_folder(const std::string& path, const LoadOptions& opts) {
  check(fs::exists(path), ErrorCode::kIo, "model path does not exist: " + path);
  check(fs::is_directory(path), ErrorCode::kModel, "model path is not a folder: " + path);
  check(fs::is_regular_file(path + "/model_index.json"), ErrorCode::kModel,
        path + " is not a diffusers model folder (no model_index.json)");
  nlohmann::json index = read_json_file(path + "/model_index.json");
  for (const char* comp : {"tokenizer", "text_encoder", "unet", "vae", "scheduler"})
    check(fs::is_directory(path + "/" + comp), ErrorCode::kModel,
          path + ": missing component '" + comp + "' (no folder " + path + "/" + comp + ")");
  auto model = std::make_unique<StableDiffusionModel>();
  model->path = path;
  model->precision = opts.precision;
  require_precision_supported(opts.precision, path);
  model->name = fs::path(path).filename().string();
  if (model->name.empty()) model->name = fs::path(path).parent_path().filename().string();

  model->tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::from_folder(path + "/tokenizer"));
  // Each network's builder; run now, or on first use when reduce_memory (model/lazy_networks.h).
  model->reduce_memory = opts.reduce_memory;
  const bool lazy = opts.reduce_memory;
  for (const char* comp : {"text_encoder", "unet", "vae"})
    for (const std::string& f : find_component_weights(path + "/" + comp, opts.variant)) model->weight_files.push_back(f);
  auto bind = [path, opts](const std::string& comp) {
    return open_component(path, comp, opts.variant, opts.precision);
  };
  {
    std::string cfg = path + "/text_encoder/config.json";
    ClipTextConfig c = parse_clip_text_config(read_json_file(cfg), cfg);
    model->text_encoder = make_network<LazyTextEncoder, TextEncoderNetwork>(
        lazy, c, [c, bind]() {
          return bind_module<ClipTextEncoder, TextEncoderNetwork>(c, bind("text_encoder"));
        });
  }
  {
    std::string cfg = path + "/unet/config.json";
    UNetConfig c = parse_unet_config(read_json_file(cfg), cfg);
    model->unet = make_network<LazyUNet, UNetNetwork>(lazy, c, [c, bind]() {
      return bind_module<UNet, UNetNetwork>(c, bind("unet"));
    });
  }
  {
    std::string cfg = path + "/vae/config.json";
    VaeConfig c = parse_vae_config(read_json_file(cfg), cfg);
    model->vae = make_network<LazyVaeDecoder, VaeDecoderNetwork>(lazy, c, [c, bind]() {
      return bind_module<VaeDecoder, VaeDecoderNetwork>(c, bind("vae"));
    });
  }
  check(model->text_encoder->config().hidden_size == model->unet->config().cross_attention_dim, ErrorCode::kModel,
        path + ": text encoder width does not match the UNet's cross_attention_dim");
  model->scheduler_config = read_json_file(path + "/scheduler/scheduler_config.json");

  bool has_checker = index.contains("safety_checker") && index["safety_checker"].is_array() &&
                     !index["safety_checker"].empty() && !index["safety_checker"][0].is_null() &&
                     fs::is_directory(path + "/safety_checker");
  if (opts.safety_checker && has_checker) {
    std::string cfg = path + "/safety_checker/config.json";
    ClipVisionConfig c = parse_clip_vision_config(read_json_file(cfg), cfg);
    for (const std::string& f : find_component_weights(path + "/safety_checker", opts.variant))
      model->weight_files.push_back(f);
    model->safety_checker = make_network<LazySafetyChecker, SafetyCheckerNetwork>(
        lazy, c, [c, bind]() {
          return bind_module<SafetyChecker, SafetyCheckerNetwork>(c, bind("safety_checker"));
        });
    std::string fe = path + "/feature_extractor/preprocessor_config.json";
    model->feature_extractor = parse_preprocessor_config(read_json_file(fe));
  }
  return model;
}

std::unique_ptr<StableDiffusionModel> load_model(const std::string& path, const LoadOptions& opts) {
  if (is_sdpal_file(path)) return load_sdpal_file(path, opts);
  if (looks_like_coreml_resources(path)) return load_coreml_resources(path, opts);
  check(opts.executor == Executor::kNative, ErrorCode::kInvalidArgument,
        "--executor mil runs Core ML programs; " + path + " is not a Core ML model");
  if (looks_like_ldm_checkpoint(path)) return load_ldm_checkpoint(path, opts, opts.config_dir);
  return load_diffusers_folder(path, opts);
}

}  // namespace sdpal
