#include "model/sdpal_model.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "io/sdpal_file.h"
#include "model/lazy_networks.h"
#include "model/ldm_checkpoint.h"
#include "model/model_config.h"
#include "model/weight_binder.h"
#include "quant/palettize.h"

namespace sdpal {
namespace fs = std::filesystem;

namespace {

nlohmann::json parse_metadata_json(const SdpalFile& f, const std::string& key) {
  const std::string text = f.metadata(key);
  check(!text.empty(), ErrorCode::kModel, f.path() + ": the sdpal file has no '" + key + "'");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kFormat, f.path() + ": metadata '" + key + "' is not valid JSON: " + e.what());
  }
}

WeightBinder bind_component(const SdpalFile& f, const std::string& comp, Precision precision) {
  WeightBinder w(comp, {f.component(comp)});
  w.set_precision(precision);
  return w;
}

std::string read_text(const std::string& path) {
  check(fs::is_regular_file(path), ErrorCode::kModel, "missing file " + path);
  std::ifstream in(path, std::ios::binary);
  check(in.good(), ErrorCode::kIo, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  check(!in.bad(), ErrorCode::kIo, "cannot read " + path);
  return s.str();
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

std::string palettized_label(int nbits, const Shape& lut_shape) {
  return std::to_string(nbits) + "-bit palettized, LUT " + shape_str(lut_shape);
}

// A float tensor's values converted to `to` (F32, F16 or BF16).
std::vector<uint8_t> convert_dense(const TensorView& v, DType to) {
  const Tensor f = to_f32(v);
  const int64_t n = f.numel();
  const float* x = f.f32();
  std::vector<uint8_t> out(size_t(n) * dtype_size(to));
  if (to == DType::F32) {
    std::memcpy(out.data(), x, out.size());
    return out;
  }
  uint16_t* o = reinterpret_cast<uint16_t*>(out.data());
  for (int64_t i = 0; i < n; ++i) {
    if (to == DType::F16) {
      o[i] = f32_to_f16(x[i]);
      if ((o[i] & 0x7c00u) == 0x7c00u && std::isfinite(x[i]))
        fail(ErrorCode::kInvalidArgument, "tensor '" + v.name + "': element " + std::to_string(i) + " (" +
                                              std::to_string(x[i]) +
                                              ") is beyond float16's range; convert with --dtype fp32 or bf16");
    } else {
      o[i] = f32_to_bf16(x[i]);
    }
  }
  return out;
}

}  // namespace

bool is_sdpal_file(const std::string& path) { return looks_like_sdpal_file(path); }

std::unique_ptr<StableDiffusionModel> load_sdpal_file(const std::string& path, const LoadOptions& opts) {
  check(fs::exists(path), ErrorCode::kIo, "model path does not exist: " + path);
  check(opts.executor == Executor::kNative, ErrorCode::kInvalidArgument,
        "--executor mil runs Core ML programs; " + path + " is an sdpal file");
  const std::shared_ptr<const SdpalFile> file = SdpalFile::open(path);
  const SdpalFile& f = *file;
  for (const char* comp : {"text_encoder", "unet", "vae"})
    check(f.has_component(comp), ErrorCode::kModel, path + ": missing component '" + std::string(comp) + "'");
  for (const char* key : {"sdpal.tokenizer.vocab", "sdpal.tokenizer.merges", "sdpal.scheduler"})
    check(!f.metadata(key).empty(), ErrorCode::kModel, path + ": the sdpal file has no '" + std::string(key) + "'");

  auto model = std::make_unique<StableDiffusionModel>();
  model->path = path;
  model->precision = opts.precision;
  model->format = "sdpal";
  require_precision_supported(opts.precision, path);
  model->name = fs::path(path).stem().string();
  model->weight_files = {path};

  // The source's tokenizer_config / special_tokens_map (SD 2.x pads with "!") apply as in a folder.
  model->tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::from_memory(
      f.metadata("sdpal.tokenizer.vocab"), f.metadata("sdpal.tokenizer.merges"), path + " (sdpal.tokenizer.vocab)",
      path + " (sdpal.tokenizer.merges)",
      {{f.metadata("sdpal.tokenizer.tokenizer_config"), path + " (sdpal.tokenizer.tokenizer_config)"},
       {f.metadata("sdpal.tokenizer.special_tokens_map"), path + " (sdpal.tokenizer.special_tokens_map)"}}));
  auto where = [&](const std::string& comp) { return path + " (sdpal.config." + comp + ")"; };
  // Each network's builder; run now, or on first use when reduce_memory (model/lazy_networks.h).
  model->reduce_memory = opts.reduce_memory;
  const bool lazy = opts.reduce_memory;
  const Precision precision = opts.precision;
  {
    ClipTextConfig c = parse_clip_text_config(parse_metadata_json(f, "sdpal.config.text_encoder"), where("text_encoder"));
    model->text_encoder = make_network<LazyTextEncoder, TextEncoderNetwork>(
        lazy, c, [c, file, precision]() {
          return bind_module<ClipTextEncoder, TextEncoderNetwork>(c, bind_component(*file, "text_encoder", precision));
        });
  }
  {
    UNetConfig c = parse_unet_config(parse_metadata_json(f, "sdpal.config.unet"), where("unet"));
    model->unet = make_network<LazyUNet, UNetNetwork>(lazy, c, [c, file, precision]() {
      return bind_module<UNet, UNetNetwork>(c, bind_component(*file, "unet", precision));
    });
  }
  {
    VaeConfig c = parse_vae_config(parse_metadata_json(f, "sdpal.config.vae"), where("vae"));
    model->vae =
        make_network<LazyVaeDecoder, VaeDecoderNetwork>(lazy, c, [c, file, precision]() {
          return bind_module<VaeDecoder, VaeDecoderNetwork>(c, bind_component(*file, "vae", precision));
        });
  }
  check(model->text_encoder->config().hidden_size == model->unet->config().cross_attention_dim, ErrorCode::kModel,
        path + ": text encoder width does not match the UNet's cross_attention_dim");
  model->scheduler_config = parse_metadata_json(f, "sdpal.scheduler");

  if (opts.safety_checker && f.has_component("safety_checker")) {
    ClipVisionConfig c =
        parse_clip_vision_config(parse_metadata_json(f, "sdpal.config.safety_checker"), where("safety_checker"));
    model->safety_checker = make_network<LazySafetyChecker, SafetyCheckerNetwork>(
        lazy, c, [c, file, precision]() {
          return bind_module<SafetyChecker, SafetyCheckerNetwork>(c, bind_component(*file, "safety_checker", precision));
        });
    model->feature_extractor = parse_preprocessor_config(parse_metadata_json(f, "sdpal.feature_extractor"));
  }
  return model;
}

ModelSource read_diffusers_source(const std::string& path, const std::string& variant, bool safety_checker) {
  check(fs::exists(path), ErrorCode::kIo, "model path does not exist: " + path);
  check(fs::is_directory(path), ErrorCode::kModel, "model path is not a folder: " + path);
  check(fs::is_regular_file(path + "/model_index.json"), ErrorCode::kModel,
        path + " is not a diffusers model folder (no model_index.json)");
  for (const char* comp : {"tokenizer", "text_encoder", "unet", "vae", "scheduler"})
    check(fs::is_directory(path + "/" + comp), ErrorCode::kModel,
          path + ": missing component '" + comp + "' (no folder " + path + "/" + comp + ")");
  ModelSource src;
  src.path = path;
  src.model_index_json = read_text(path + "/model_index.json");
  const nlohmann::json index = read_json_file(path + "/model_index.json");
  src.scheduler_json = read_text(path + "/scheduler/scheduler_config.json");
  src.vocab_json = read_text(path + "/tokenizer/vocab.json");
  src.merges_txt = read_text(path + "/tokenizer/merges.txt");
  for (const char* extra : {"tokenizer_config", "special_tokens_map"}) {
    const std::string p = path + "/tokenizer/" + extra + ".json";
    if (fs::is_regular_file(p)) src.tokenizer_extra[extra] = read_text(p);
  }
  std::vector<std::string> comps{"text_encoder", "unet", "vae"};
  const bool has_checker = index.contains("safety_checker") && index["safety_checker"].is_array() &&
                           !index["safety_checker"].empty() && !index["safety_checker"][0].is_null() &&
                           fs::is_directory(path + "/safety_checker");
  if (safety_checker && has_checker) {
    comps.push_back("safety_checker");
    src.feature_extractor_json = read_text(path + "/feature_extractor/preprocessor_config.json");
  }
  for (const std::string& comp : comps) {
    ModelSourceComponent c;
    c.name = comp;
    c.config_json = read_text(path + "/" + comp + "/config.json");
    for (const std::string& f : find_component_weights(path + "/" + comp, variant)) c.files.push_back(open_safetensors(f));
    src.components.push_back(std::move(c));
  }
  return src;
}

ModelSource read_ldm_source(const std::string& path, const std::string& config_dir) {
  LdmComponents c = open_ldm_checkpoint(path, config_dir);
  ModelSource src;
  src.path = path;
  src.scheduler_json = c.scheduler_json.dump(2);
  src.model_index_json = nlohmann::json{{"_class_name", "StableDiffusionPipeline"},
                                        {"text_encoder", {"transformers", "CLIPTextModel"}},
                                        {"unet", {"diffusers", "UNet2DConditionModel"}},
                                        {"vae", {"diffusers", "AutoencoderKL"}},
                                        {"scheduler", {"diffusers", c.scheduler_json.value("_class_name", "PNDMScheduler")}},
                                        {"tokenizer", {"transformers", "CLIPTokenizer"}},
                                        {"safety_checker", {nullptr, nullptr}},
                                        {"feature_extractor", {nullptr, nullptr}}}
                             .dump(2);
  if (!c.tokenizer_dir.empty()) {
    src.vocab_json = read_text(c.tokenizer_dir + "/vocab.json");
    src.merges_txt = read_text(c.tokenizer_dir + "/merges.txt");
    for (const char* extra : {"tokenizer_config", "special_tokens_map"}) {
      const std::string p = c.tokenizer_dir + "/" + extra + ".json";
      if (fs::is_regular_file(p)) src.tokenizer_extra[extra] = read_text(p);
    }
  } else {
    check(!c.clip_vocab.empty(), ErrorCode::kModel,
          path + ": original checkpoints carry no tokenizer; give --config DIR with DIR/tokenizer/, or "
                 "SDPAL_CLIP_VOCAB=/path/to/bpe_simple_vocab_16e6.txt.gz");
    std::tie(src.vocab_json, src.merges_txt) = ClipTokenizer::files_from_bpe_gz(c.clip_vocab);
    if (c.text_layout == "openclip") src.tokenizer_extra["special_tokens_map"] = R"({"pad_token": "!"})";
  }
  const std::pair<const char*, std::pair<const nlohmann::json*, std::shared_ptr<TensorFile>>> comps[] = {
      {"text_encoder", {&c.text_encoder_json, c.text_encoder}},
      {"unet", {&c.unet_json, c.unet}},
      {"vae", {&c.vae_json, c.vae}}};
  for (const auto& [name, part] : comps) {
    ModelSourceComponent mc;
    mc.name = name;
    mc.config_json = part.first->dump(2);
    mc.files = {part.second};
    src.components.push_back(std::move(mc));
  }
  return src;
}

ModelSource read_sdpal_source(const std::string& path, bool safety_checker) {
  check(fs::exists(path), ErrorCode::kIo, "model path does not exist: " + path);
  const std::shared_ptr<const SdpalFile> f = SdpalFile::open(path);
  ModelSource src;
  src.path = path;
  src.model_index_json = f->metadata("sdpal.model_index");
  src.scheduler_json = f->metadata("sdpal.scheduler");
  src.vocab_json = f->metadata("sdpal.tokenizer.vocab");
  src.merges_txt = f->metadata("sdpal.tokenizer.merges");
  for (const char* extra : {"tokenizer_config", "special_tokens_map"}) {
    const std::string text = f->metadata(std::string("sdpal.tokenizer.") + extra);
    if (!text.empty()) src.tokenizer_extra[extra] = text;
  }
  for (const std::string& c : f->components()) {
    if (c == "safety_checker" && !safety_checker) continue;
    src.components.push_back({c, f->config(c), {f->component(c)}});
  }
  if (safety_checker && f->has_component("safety_checker")) src.feature_extractor_json = f->metadata("sdpal.feature_extractor");
  return src;
}

ConvertSummary convert_to_sdpal(const ModelSource& src, const std::string& out, const ConvertOptions& o,
                                const std::function<void(const ConvertTensorEvent&)>& progress) {
  check(o.nbits == 0 || o.nbits == 1 || o.nbits == 2 || o.nbits == 3 || o.nbits == 4 || o.nbits == 6 || o.nbits == 8,
        ErrorCode::kInvalidArgument, "--palettize must be 4, 6 or 8 (or 1, 2, 3), got " + std::to_string(o.nbits));
  check(o.group_size >= 0, ErrorCode::kInvalidArgument, "--group-size must be >= 1");
  check(o.group_size == 0 || o.nbits != 0, ErrorCode::kInvalidArgument, "--group-size needs --palettize");
  check(o.dtype == DType::F16 || o.dtype == DType::F32 || o.dtype == DType::BF16, ErrorCode::kInvalidArgument,
        "--dtype must be fp16, fp32 or bf16");
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };

  // One job per tensor, in source order; names must be unique within a component.
  struct Job {
    size_t component;
    const TensorView* view;
    // Results; the writer points into pal / pview / buffer, which stay in place (jobs never move).
    SdpalTensorToWrite t;
    std::unique_ptr<PalettizedTensor> pal;
    std::unique_ptr<PalettizedView> pview;
    std::vector<uint8_t> buffer;
    ConvertTensorEvent ev;
  };
  size_t total = 0;
  for (const auto& c : src.components)
    for (const auto& f : c.files) total += f->tensors().size();
  std::vector<Job> jobs(total);
  {
    size_t j = 0;
    for (size_t ci = 0; ci < src.components.size(); ++ci) {
      std::map<std::string, std::string> origin;
      for (const auto& file : src.components[ci].files) {
        for (const TensorView& v : file->tensors()) {
          auto [it, inserted] = origin.emplace(v.name, file->path());
          check(inserted, ErrorCode::kModel,
                src.components[ci].name + ": tensor '" + v.name + "' appears in both " + it->second + " and " +
                    file->path());
          jobs[j].component = ci;
          jobs[j].view = &v;
          ++j;
        }
      }
    }
  }

  auto convert_one = [&](Job& job) {
    const auto t1 = std::chrono::steady_clock::now();
    const TensorView& v = *job.view;
    ConvertTensorEvent& ev = job.ev;
    ev.total = total;
    ev.component = src.components[job.component].name;
    ev.name = v.name;
    ev.shape = v.shape;
    ev.source_dtype = v.dtype;
    ev.bytes_before = v.nbytes;
    SdpalTensorToWrite& t = job.t;
    t.name = v.name;
    // A source that is already palettized (F16 tables, no vectors) is kept as it is.
    const bool pass_through =
        v.is_palettized() && v.palettized->lut_dtype == DType::F16 && v.palettized->vector_size() == 1;
    std::string why;
    if (pass_through) {
      job.pview = std::make_unique<PalettizedView>(*v.palettized);
      job.pview->name = v.name;
      t.palettized = job.pview.get();
      ev.stored = palettized_label(t.palettized->nbits, t.palettized->lut_shape) + " (kept)";
      ev.bytes_after = t.palettized->indices_nbytes + t.palettized->lut_nbytes;
    } else if (o.nbits && !v.is_palettized() && palettize_eligible(v, &why, o.threshold) &&
               (o.group_size == 0 || v.shape[0] % o.group_size == 0)) {
      job.pal = std::make_unique<PalettizedTensor>(palettize(v, PalettizeOptions{o.nbits, o.group_size}));
      job.pview = std::make_unique<PalettizedView>(job.pal->view());
      t.palettized = job.pview.get();
      const Tensor ref = to_f32(v);
      std::vector<float> approx(size_t(v.numel()));
      decode_palettized(*job.pview, 0, v.numel(), approx.data());
      ev.snr_db = snr_db(ref.f32(), approx.data(), v.numel());
      ev.stored = palettized_label(o.nbits, job.pal->lut_shape);
      ev.bytes_after = t.palettized->indices_nbytes + t.palettized->lut_nbytes;
    } else {
      if (o.nbits && why.empty() && !v.is_palettized())
        why = std::to_string(v.shape[0]) + " output channels are not a multiple of --group-size " +
              std::to_string(o.group_size);
      // Report only weights big enough to palettize that stayed dense (embeddings, groups).
      if (o.nbits && is_float(v.dtype) && v.shape.size() >= 2 && v.numel() > o.threshold) ev.note = why;
      if (v.is_palettized() || (is_float(v.dtype) && v.dtype != o.dtype)) {
        job.buffer = convert_dense(v, o.dtype);
        t.dense = {v.name, o.dtype, v.shape, job.buffer.data(), job.buffer.size()};
      } else {
        t.dense = TensorToWrite::from(v);
      }
      ev.stored = dtype_name(t.dense.dtype);
      ev.bytes_after = t.dense.nbytes;
    }
    ev.seconds = since(t1);
  };

  // Tensors are independent: workers take the next one until none is left (big and small ones
  // mix, so a shared counter balances better than fixed chunks). Progress is reported in the
  // order tensors finish.
  std::atomic<size_t> next{0};
  std::mutex report;
  size_t done = 0;
  const int64_t workers = std::min<int64_t>(num_threads(), int64_t(total));
  parallel_for(workers, [&](int64_t, int64_t) {
    for (size_t i; (i = next.fetch_add(1)) < total;) {
      convert_one(jobs[i]);
      std::lock_guard<std::mutex> lock(report);
      jobs[i].ev.index = ++done;
      if (progress) progress(jobs[i].ev);
    }
  });

  SdpalModelToWrite m;
  m.model_index_json = src.model_index_json;
  m.scheduler_json = src.scheduler_json;
  m.vocab_json = src.vocab_json;
  m.merges_txt = src.merges_txt;
  m.feature_extractor_json = src.feature_extractor_json;
  for (const auto& [k, v] : src.tokenizer_extra) m.extra_metadata["sdpal.tokenizer." + k] = v;
  m.extra_metadata["sdpal.source"] = fs::path(src.path).filename().string();
  {
    std::string conv = "sdpal 0.1.0 convert";
    if (o.nbits) conv += " --palettize " + std::to_string(o.nbits);
    if (o.group_size) conv += " --group-size " + std::to_string(o.group_size);
    conv += std::string(" --dtype ") + (o.dtype == DType::F16 ? "fp16" : o.dtype == DType::F32 ? "fp32" : "bf16");
    m.extra_metadata["sdpal.converter"] = conv;
  }
  ConvertSummary sum;
  for (const ModelSourceComponent& sc : src.components) m.components.push_back({sc.name, sc.config_json, {}});
  for (Job& job : jobs) {
    m.components[job.component].tensors.push_back(job.t);
    ++sum.tensors;
    sum.palettized += job.t.palettized != nullptr;
    sum.left_dense += !job.ev.note.empty();
    sum.bytes_before += job.ev.bytes_before;
    sum.bytes_after += job.ev.bytes_after;
  }
  write_sdpal_file(out, m);
  std::error_code ec;
  sum.file_bytes = uint64_t(fs::file_size(out, ec));
  sum.seconds = since(t0);
  return sum;
}

}  // namespace sdpal
