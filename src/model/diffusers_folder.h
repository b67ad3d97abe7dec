// A diffusers model folder (model_index.json + one sub-folder per component), loaded into the
// native modules. Every size comes from the components' config.json files.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/image_preprocess.h"
#include "model/clip_text_encoder.h"
#include "model/safety_checker.h"
#include "model/tokenizer.h"
#include "model/unet.h"
#include "model/vae.h"

namespace sdpal {

// Who computes a Core ML model's networks: the native modules bound to its weights, or the MIL
// interpreter running its programs as they are. Diffusers folders always run natively.
enum class Executor { kNative, kMil };

// Where the noise comes from: torch.randn on the CPU (diffusers' default), numpy's legacy randn (Apple's
// Core ML pipelines' default), torch.randn on a CUDA device (diffusers with torch.Generator("cuda"): one
// draw for the whole batch), or Apple's `nvidia` source (the same generator, one draw per image).
enum class NoiseSource { kTorch, kNumpy, kCuda, kNvidia };

struct LoadOptions {
  bool safety_checker = true;  // load and run it when the folder has one
  std::string variant;         // "" = plain files, falling back to any variant; "fp16" = *.fp16.safetensors first
  Precision precision = Precision::F32;  // compute precision of the networks
  Executor executor = Executor::kNative;  // Core ML resources only
  // Original single-file checkpoints: a folder of diffusers config.json files per component
  // (unet/, text_encoder/, vae/, scheduler/, tokenizer/) for what the tensors' shapes cannot tell.
  std::string config_dir;
  // Prepare each network when it first runs and give its weights back when its stage is over
  // (model/lazy_networks.h): peak memory of one stage instead of all of them. Load errors in a
  // network's weights then surface when it first runs.
  bool reduce_memory = false;
};

struct StableDiffusionModel {
  std::string path, name;
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::unique_ptr<TextEncoderNetwork> text_encoder;
  std::unique_ptr<UNetNetwork> unet;
  std::unique_ptr<VaeDecoderNetwork> vae;
  std::unique_ptr<SafetyCheckerNetwork> safety_checker;  // null when absent or disabled
  PreprocessConfig feature_extractor;
  nlohmann::json scheduler_config;
  std::vector<std::string> weight_files;  // every file mapped, for inspect and hashing
  Precision precision = Precision::F32;
  std::string format = "diffusers";  // "diffusers", "coreml", "ldm" (original single-file checkpoint)
  NoiseSource default_noise = NoiseSource::kTorch;
  std::vector<std::string> warnings;  // things the loader could not honour, for the user
  bool reduce_memory = false;         // networks are lazy: the pipeline releases each after its stage
  int vae_scale_factor() const { return vae->config().scale_factor(); }
  int default_size() const { return unet->config().sample_size * vae_scale_factor(); }
};

// Weight files of one component folder (single file or sharded index), honouring the variant.
std::vector<std::string> find_component_weights(const std::string& dir, const std::string& variant);

std::unique_ptr<StableDiffusionModel> load_diffusers_folder(const std::string& path, const LoadOptions& opts);

// A diffusers folder, Core ML resources (model/coreml_resources.h) or an original single-file
// checkpoint (model/ldm_checkpoint.h), picked by what `path` holds.
std::unique_ptr<StableDiffusionModel> load_model(const std::string& path, const LoadOptions& opts);

}  // namespace sdpal
