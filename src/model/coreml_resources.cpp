#include "model/coreml_resources.h"

#include <filesystem>

#include "core/error.h"
#include "io/coreml/model_folder.h"
#include "model/coreml_configs.h"
#include "model/coreml_mil_networks.h"
#include "model/coreml_safety_checker.h"
#include "model/coreml_weights.h"
#include "model/lazy_networks.h"
#include "model/safety_checker.h"
#include "model/weight_binder.h"

namespace sdpal {

namespace fs = std::filesystem;

namespace {

bool has_model_child(const fs::path& dir, int depth) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".mlmodelc" || ext == ".mlpackage") return true;
    if (depth > 0 && e.is_directory(ec) && has_model_child(e.path(), depth - 1)) return true;
  }
  return false;
}

// The scheduler settings Apple's pipelines use for SD 1.x / 2.x (diffusers' SD v1.4 config).
nlohmann::json apple_scheduler_config() {
  return nlohmann::json{{"_class_name", "PNDMScheduler"}, {"beta_start", 0.00085},     {"beta_end", 0.012},
                        {"beta_schedule", "scaled_linear"}, {"num_train_timesteps", 1000}, {"set_alpha_to_one", false},
                        {"skip_prk_steps", true},         {"steps_offset", 1},           {"clip_sample", false},
                        {"prediction_type", "epsilon"}};
}

std::string read_text(const coreml::ResourceTree& tree, const std::string& rel) {
  const auto b = tree.read(rel);
  return std::string(reinterpret_cast<const char*>(b.data), b.size);
}

WeightBinder coreml_binder(const char* component, const std::vector<std::shared_ptr<CoreMLWeightFile>>& files,
                           CoreMLLayout layout, Precision precision) {
  WeightBinder w(component, std::vector<std::shared_ptr<TensorFile>>(files.begin(), files.end()));
  w.set_name_mapper(coreml_name_mapper(layout));
  w.set_precision(precision);
  return w;
}

}  // namespace

bool looks_like_coreml_resources(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::path(path).extension() == ".zip";
  if (!fs::is_directory(path, ec)) return false;
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".mlmodelc" || ext == ".mlpackage") return true;
  return !fs::exists(fs::path(path) / "model_index.json") && has_model_child(path, 2);
}

std::unique_ptr<StableDiffusionModel> load_coreml_resources(const std::string& path, const LoadOptions& opts) {
  using coreml::CoreMLModel;
  require_precision_supported(opts.precision, path);
  coreml::SDCoreMLResources r = coreml::find_sd_resources(path);
  if (r.text_encoder_2)
    fail(ErrorCode::kUnsupported, path + ": has a second text encoder (Stable Diffusion XL), which sdpal does not run yet");
  check(!r.vocab.empty() && !r.merges.empty(), ErrorCode::kModel,
        path + ": no vocab.json / merges.txt next to the models (Apple's resources ship them)");
  auto model = std::make_unique<StableDiffusionModel>();
  model->path = path;
  model->precision = opts.precision;
  model->format = "coreml";
  model->default_noise = NoiseSource::kNumpy;
  model->name = fs::path(path).filename().string();
  if (model->name.empty()) model->name = fs::path(path).parent_path().filename().string();
  model->tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::from_memory(
      read_text(*r.tree, r.vocab), read_text(*r.tree, r.merges), r.tree->display(r.vocab), r.tree->display(r.merges)));
  auto load = [&](const coreml::ModelFiles& f) {
    model->weight_files.push_back(r.tree->display(f.program));
    return std::make_shared<const CoreMLModel>(coreml::load_model(r.tree, f));
  };
  const bool mil = opts.executor == Executor::kMil;

  // Each network's builder; run now, or on first use when reduce_memory (model/lazy_networks.h).
  // The programs stay parsed (their weights stay in the mapped weight.bin); only what the native
  // modules or the interpreter prepare from them is built and given back.
  model->reduce_memory = opts.reduce_memory;
  const bool lazy = opts.reduce_memory;
  const Precision precision = opts.precision;
  {
    auto te = load(*r.text_encoder);
    std::shared_ptr<CoreMLWeightFile> wf = CoreMLWeightFile::open(te);
    const ClipTextConfig cfg = clip_text_config_from_coreml(*wf, te->program.main());
    model->text_encoder = make_network<LazyTextEncoder, TextEncoderNetwork>(
        lazy, cfg, [te, wf, cfg, mil, precision]() -> std::unique_ptr<TextEncoderNetwork> {
          if (mil) return std::make_unique<MilTextEncoder>(te, cfg);
          WeightBinder w = coreml_binder("text_encoder", {wf}, CoreMLLayout::kTextEncoder, precision);
          w.allow_unused_prefix("causal_attention_mask");  // a buffer the native encoder computes
          auto net = std::make_unique<ClipTextEncoder>(cfg, w);
          w.finish();
          return net;
        });
  }
  {
    std::vector<std::shared_ptr<const CoreMLModel>> chunks;
    if (r.unet)
      chunks.push_back(load(*r.unet));
    else
      for (const auto& c : r.unet_chunks) chunks.push_back(load(c));
    std::vector<std::shared_ptr<CoreMLWeightFile>> files;
    std::vector<const CoreMLWeightFile*> file_ptrs;
    std::vector<const coreml::MilFunction*> mains;
    for (const auto& c : chunks) {
      files.push_back(CoreMLWeightFile::open(c));
      file_ptrs.push_back(files.back().get());
      mains.push_back(&c->program.main());
    }
    const UNetConfig cfg = unet_config_from_coreml(file_ptrs, mains);
    model->unet = make_network<LazyUNet, UNetNetwork>(
        lazy, cfg, [chunks, files, cfg, mil, precision]() -> std::unique_ptr<UNetNetwork> {
          if (mil) return std::make_unique<MilUNet>(chunks, cfg);
          return bind_module<UNet, UNetNetwork>(cfg, coreml_binder("unet", files, CoreMLLayout::kUnet, precision));
        });
  }
  {
    auto vae = load(*r.vae_decoder);
    std::shared_ptr<CoreMLWeightFile> wf = CoreMLWeightFile::open(vae);
    const VaeConfig cfg = vae_decoder_config_from_coreml(*wf);
    model->vae = make_network<LazyVaeDecoder, VaeDecoderNetwork>(
        lazy, cfg, [vae, wf, cfg, mil, precision]() -> std::unique_ptr<VaeDecoderNetwork> {
          if (mil) return std::make_unique<MilVaeDecoder>(vae, cfg);
          return bind_module<VaeDecoder, VaeDecoderNetwork>(
              cfg, coreml_binder("vae", {wf}, CoreMLLayout::kVaeDecoder, precision));
        });
  }
  check(model->text_encoder->config().hidden_size == model->unet->config().cross_attention_dim, ErrorCode::kModel,
          path + ": text encoder width does not match the UNet's cross-attention width");
  model->scheduler_config = apple_scheduler_config();
  if (r.safety_checker && opts.safety_checker) {
    auto sc = load(*r.safety_checker);
    std::shared_ptr<CoreMLWeightFile> wf = CoreMLWeightFile::open(sc);
    const ClipVisionConfig cfg = safety_checker_config_from_coreml(*wf, *sc);
    model->safety_checker = make_network<LazySafetyChecker, SafetyCheckerNetwork>(
        lazy, cfg, [sc, wf, cfg, mil, precision]() -> std::unique_ptr<SafetyCheckerNetwork> {
          if (mil) return std::make_unique<MilSafetyChecker>(sc, cfg);
          WeightBinder w("safety_checker", {wf, safety_checker_folded_constants(*sc, cfg)});
          w.set_name_mapper(coreml_mangle);
          w.set_precision(precision);
          auto net = std::make_unique<SafetyChecker>(cfg, w);
          w.finish();
          return net;
        });
    // Apple's Swift pipeline resizes to the program's input size and normalizes with ImageNet's
    // mean and std; sdpal prepares the image as diffusers' CLIP feature extractor does (the reference
    // for these weights), at the program's input size.
    model->feature_extractor = PreprocessConfig{};
    model->feature_extractor.shortest_edge = cfg.image_size;
    model->feature_extractor.crop_height = model->feature_extractor.crop_width = cfg.image_size;
  }
  return model;
}

}  // namespace sdpal
