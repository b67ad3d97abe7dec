#include "model/ldm_checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "io/mapped_file.h"
#include "io/pickle_checkpoint.h"
#include "io/safetensors.h"
#include "io/zip_archive.h"
#include "model/lazy_networks.h"
#include "model/ldm_names.h"
#include "model/weight_binder.h"

namespace sdpal {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// A component's tensors: views of the checkpoint's, renamed (and sliced or reshaped).
class LdmTensorFile final : public TensorFile {
 public:
  LdmTensorFile(std::string path, std::shared_ptr<TensorFile> source)
      : path_(std::move(path)), source_(std::move(source)), keys_(std::make_shared<std::map<std::string, std::string>>()) {}
  void add(TensorView v, std::string source_key) {
    index_.emplace(v.name, views_.size());
    keys_->emplace(v.name, std::move(source_key));
    views_.push_back(std::move(v));
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorView>& tensors() const override { return views_; }
  const TensorView* find(const std::string& name) const override {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &views_[it->second];
  }
  std::string metadata(const std::string& key) const override { return source_->metadata(key); }
  std::string source_key(const std::string& name) const {
    auto it = keys_->find(name);
    return it == keys_->end() ? std::string() : it->second;
  }
  // The same views named by their checkpoint keys, and the diffusers name -> key mapper a
  // WeightBinder over that file uses: its messages then name both.
  std::shared_ptr<LdmTensorFile> keyed_by_source() const {
    auto f = std::make_shared<LdmTensorFile>(path_, source_);
    for (const TensorView& v : views_) {
      TensorView w = v;
      w.name = keys_->at(v.name);
      std::string key = w.name;
      f->add(std::move(w), std::move(key));
    }
    return f;
  }
  std::function<std::string(const std::string&)> mapper() const {
    return [keys = std::shared_ptr<const std::map<std::string, std::string>>(keys_)](const std::string& name) {
      auto it = keys->find(name);
      return it == keys->end() ? name : it->second;
    };
  }

 private:
  std::string path_;
  std::shared_ptr<TensorFile> source_;
  std::vector<TensorView> views_;
  std::unordered_map<std::string, size_t> index_;
  std::shared_ptr<std::map<std::string, std::string>> keys_;  // name -> checkpoint key
};

// The opened checkpoint, with the lookups inference needs; errors name the file and key.
struct Checkpoint {
  std::shared_ptr<TensorFile> file;
  const std::string& path() const { return file->path(); }
  const TensorView* find(const std::string& key) const { return file->find(key); }
  bool has(const std::string& key) const { return find(key) != nullptr; }
  const Shape& shape(const std::string& key, size_t rank, const std::string& why) const {
    const TensorView* v = find(key);
    if (!v) fail(ErrorCode::kModel, path() + ": missing tensor '" + key + "' (" + why + ")");
    if (v->shape.size() != rank)
      fail(ErrorCode::kModel, path() + ": tensor '" + key + "' has shape " + shape_str(v->shape) + ", expected rank " +
                                  std::to_string(rank) + " (" + why + ")");
    return v->shape;
  }
  bool any_with_prefix(const std::string& prefix) const {
    for (const TensorView& v : file->tensors())
      if (starts_with(v.name, prefix)) return true;
    return false;
  }
  // 1 + the largest N of the keys "<prefix>N.<...>", 0 if there are none.
  int count(const std::string& prefix) const {
    long n = 0;
    for (const TensorView& v : file->tensors()) {
      if (!starts_with(v.name, prefix)) continue;
      const char* s = v.name.c_str() + prefix.size();
      char* end = nullptr;
      long i = std::strtol(s, &end, 10);
      if (end != s && *end == '.' && i >= 0 && i < 100000) n = std::max(n, i + 1);
    }
    return int(n);
  }
};

std::string list_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (size_t i = 0; i < keys.size() && i < 5; ++i) s += (i ? ", '" : "'") + keys[i] + "'";
  if (keys.size() > 5) s += ", ... (" + std::to_string(keys.size()) + " in all)";
  return s;
}

// ---- architecture ---------------------------------------------------------------------------

LdmUNetLayout infer_unet(const Checkpoint& ck) {
  const std::string P = kLdmUNetPrefix;
  const int n_in = ck.count(P + "input_blocks."), n_out = ck.count(P + "output_blocks.");
  int first_op = 0;
  for (int i = 1; i < n_in && !first_op; ++i)
    if (ck.has(P + "input_blocks." + std::to_string(i) + ".0.op.weight")) first_op = i;
  // The first downsampler closes down block 0: input_blocks.(L+1).0.op.
  const int L = first_op ? first_op - 1 : n_in - 1;
  if (L < 1 || n_in % (L + 1) != 0 || n_out != n_in || n_in / (L + 1) > 8)
    fail(ErrorCode::kModel, ck.path() + ": unrecognised UNet layout (" + std::to_string(n_in) + " input blocks, " +
                                std::to_string(n_out) + " output blocks, first downsampler at input_blocks." +
                                std::to_string(first_op) + "); SD 1.x/2.x UNets are expected");
  LdmUNetLayout u;
  u.layers = L;
  const int nb = n_in / (L + 1);
  for (int b = 0; b < nb; ++b) {
    const std::string k = P + "input_blocks." + std::to_string(1 + b * (L + 1));
    u.channels.push_back(int(ck.shape(k + ".0.in_layers.2.weight", 4, "down block channels")[0]));
    u.down_attention.push_back(ck.has(k + ".1.proj_in.weight"));
    u.up_attention.push_back(ck.has(P + "output_blocks." + std::to_string(b * (L + 1)) + ".1.proj_in.weight"));
  }
  u.transformer_depth = 0;
  while (ck.has(P + "middle_block.1.transformer_blocks." + std::to_string(u.transformer_depth) + ".norm1.weight"))
    ++u.transformer_depth;
  if (u.transformer_depth == 0)
    fail(ErrorCode::kModel, ck.path() + ": missing tensor '" + P +
                                "middle_block.1.transformer_blocks.0.norm1.weight' (the UNet's mid-block attention)");
  return u;
}

LdmVaeLayout infer_vae(const Checkpoint& ck) {
  const std::string P = std::string(kLdmVaePrefix) + "decoder.up.";
  LdmVaeLayout v;
  const int nb = ck.count(P);
  const int resnets = ck.count(P + "0.block.");
  if (nb < 1 || nb > 8 || resnets < 2)
    fail(ErrorCode::kModel, ck.path() + ": unrecognised VAE decoder layout (" + std::to_string(nb) + " levels of " +
                                std::to_string(resnets) + " resnets under first_stage_model.decoder.up.*)");
  v.layers = resnets - 1;
  for (int k = 0; k < nb; ++k)
    v.channels.push_back(int(ck.shape(P + std::to_string(k) + ".block.0.conv2.weight", 4, "VAE channels")[0]));
  v.mid_attention = ck.has(std::string(kLdmVaePrefix) + "decoder.mid.attn_1.q.weight");
  return v;
}

// ---- configs --------------------------------------------------------------------------------

struct Sidecar {
  json text, unet, vae, scheduler;
  std::string text_path, unet_path, vae_path, scheduler_path, tokenizer_dir;
};

Sidecar read_sidecar(const std::string& dir) {
  Sidecar s;
  if (dir.empty()) return s;
  check(fs::is_directory(dir), ErrorCode::kIo, "config folder not found: " + dir);
  auto read = [&](const char* rel, json& j, std::string& p) {
    fs::path f = fs::path(dir) / rel;
    if (fs::is_regular_file(f)) p = f.string(), j = read_json_file(p);
  };
  read("text_encoder/config.json", s.text, s.text_path);
  read("unet/config.json", s.unet, s.unet_path);
  read("vae/config.json", s.vae, s.vae_path);
  read("scheduler/scheduler_config.json", s.scheduler, s.scheduler_path);
  if (fs::is_directory(fs::path(dir) / "tokenizer")) s.tokenizer_dir = (fs::path(dir) / "tokenizer").string();
  bool safety = fs::is_directory(fs::path(dir) / "safety_checker");
  check(!s.text_path.empty() || !s.unet_path.empty() || !s.vae_path.empty() || !s.scheduler_path.empty() ||
            !s.tokenizer_dir.empty() || safety,
        ErrorCode::kInvalidArgument,
        dir + ": config folder has none of text_encoder/config.json, unet/config.json, vae/config.json, "
              "scheduler/scheduler_config.json, tokenizer/, safety_checker/");
  return s;
}

// Values read off the tensors win over `base` (the --config file, or the defaults); a --config file
// that states a different value is an error naming both.
json merge_inferred(json base, const json& inferred, const std::string& sidecar_path, const std::string& ckpt) {
  for (const auto& [k, v] : inferred.items()) {
    if (!sidecar_path.empty() && base.contains(k) && !base[k].is_null()) {
      const json& s = base[k];
      bool same = s == v;
      // transformer_layers_per_block may be given per block.
      if (!same && s.is_array() && v.is_number_integer())
        same = !s.empty() && std::all_of(s.begin(), s.end(), [&](const json& x) { return x == v; });
      if (!same)
        fail(ErrorCode::kModel, sidecar_path + ": '" + k + "' is " + s.dump() + " but the tensors of " + ckpt +
                                    " give " + v.dump());
    }
    base[k] = v;
  }
  return base;
}

std::vector<int> heads_for_head_dim_64(const std::vector<int>& channels, const std::string& what, const std::string& path,
                                       const char* config) {
  std::vector<int> h;
  for (int c : channels) {
    if (c % 64 != 0)
      fail(ErrorCode::kModel, path + ": cannot infer the attention heads of the " + what + " (width " + std::to_string(c) +
                                  " is not a multiple of the head dimension 64); give them in --config DIR/" + config);
    h.push_back(c / 64);
  }
  return h;
}

json text_config_json(const Checkpoint& ck, LdmTextLayout tl, bool clip_text_model, int layers, const Sidecar& side) {
  const bool open = tl == LdmTextLayout::kOpenClip;
  const std::string P = open ? std::string(kLdmOpenClipPrefix)
                             : std::string(kLdmClipPrefix) + (clip_text_model ? "text_model." : "");
  const std::string why = "text encoder size";
  const Shape& tok = ck.shape(P + (open ? "token_embedding.weight" : "embeddings.token_embedding.weight"), 2, why);
  const Shape& pos = ck.shape(P + (open ? "positional_embedding" : "embeddings.position_embedding.weight"), 2, why);
  const Shape& fc1 =
      ck.shape(P + (open ? "transformer.resblocks.0.mlp.c_fc.weight" : "encoder.layers.0.mlp.fc1.weight"), 2, why);
  json inferred = {{"vocab_size", tok[0]},         {"hidden_size", tok[1]}, {"intermediate_size", fc1[0]},
                   {"num_hidden_layers", layers}, {"max_position_embeddings", pos[0]}};
  json base = side.text;
  if (side.text_path.empty()) {
    base = {{"architectures", {"CLIPTextModel"}},
            {"model_type", "clip_text_model"},
            {"hidden_act", open ? "gelu" : "quick_gelu"},
            {"layer_norm_eps", 1e-5},
            {"num_attention_heads", heads_for_head_dim_64({int(tok[1])}, "text encoder", ck.path(),
                                                          "text_encoder/config.json")[0]},
            {"projection_dim", open ? 512 : 768},
            {"attention_dropout", 0.0},
            {"dropout", 0.0},
            {"initializer_factor", 1.0},
            {"initializer_range", 0.02},
            {"bos_token_id", 0},
            {"eos_token_id", 2},
            {"pad_token_id", 1}};
  }
  return merge_inferred(base, inferred, side.text_path, ck.path());
}

json unet_config_json(const Checkpoint& ck, const LdmUNetLayout& u, bool sd2, const Sidecar& side) {
  const std::string P = kLdmUNetPrefix;
  std::vector<std::string> down, up;
  for (int b = 0; b < u.blocks(); ++b) {
    down.push_back(u.down_attention[b] ? "CrossAttnDownBlock2D" : "DownBlock2D");
    up.push_back(u.up_attention[b] ? "CrossAttnUpBlock2D" : "UpBlock2D");
  }
  const TensorView* pi = ck.find(P + "middle_block.1.proj_in.weight");
  const Shape proj_in = pi ? pi->shape : Shape{};
  if (proj_in.size() != 2 && proj_in.size() != 4)
    fail(ErrorCode::kModel, ck.path() + ": tensor '" + P + "middle_block.1.proj_in.weight' has shape " +
                                shape_str(proj_in) + ", expected [C, C] or [C, C, 1, 1]");
  json inferred = {
      {"in_channels", ck.shape(P + "input_blocks.0.0.weight", 4, "UNet input channels")[1]},
      {"out_channels", ck.shape(P + "out.2.weight", 4, "UNet output channels")[0]},
      {"block_out_channels", u.channels},
      {"layers_per_block", u.layers},
      {"down_block_types", down},
      {"up_block_types", up},
      {"mid_block_type", "UNetMidBlock2DCrossAttn"},
      {"cross_attention_dim",
       ck.shape(P + "middle_block.1.transformer_blocks.0.attn2.to_k.weight", 2, "cross-attention width")[1]},
      {"use_linear_projection", proj_in.size() == 2},
      {"transformer_layers_per_block", u.transformer_depth}};
  json base = side.unet;
  if (side.unet_path.empty()) {
    base = {{"_class_name", "UNet2DConditionModel"},
            {"act_fn", "silu"},
            {"center_input_sample", false},
            {"downsample_padding", 1},
            {"flip_sin_to_cos", true},
            {"freq_shift", 0},
            {"mid_block_scale_factor", 1},
            {"norm_eps", 1e-5},
            {"norm_num_groups", 32},
            {"sample_size", sd2 ? 96 : 64},
            {"upcast_attention", sd2}};
    // diffusers' quirk: SD 1.x/2.x configs keep the number of heads in attention_head_dim.
    if (sd2) base["attention_head_dim"] = heads_for_head_dim_64(u.channels, "UNet", ck.path(), "unet/config.json");
    else base["attention_head_dim"] = 8;
  }
  return merge_inferred(base, inferred, side.unet_path, ck.path());
}

json vae_config_json(const Checkpoint& ck, const LdmVaeLayout& v, bool sd2, const Sidecar& side,
                     std::vector<std::string>* warnings) {
  const std::string P = kLdmVaePrefix;
  json inferred = {
      {"in_channels", ck.shape(P + "encoder.conv_in.weight", 4, "VAE input channels")[1]},
      {"out_channels", ck.shape(P + "decoder.conv_out.weight", 4, "VAE output channels")[0]},
      {"latent_channels", ck.shape(P + "post_quant_conv.weight", 4, "VAE latent channels")[0]},
      {"block_out_channels", v.channels},
      {"layers_per_block", v.layers},
      {"down_block_types", std::vector<std::string>(v.channels.size(), "DownEncoderBlock2D")},
      {"up_block_types", std::vector<std::string>(v.channels.size(), "UpDecoderBlock2D")},
      {"mid_block_add_attention", v.mid_attention}};
  json base = side.vae;
  if (side.vae_path.empty()) {
    base = {{"_class_name", "AutoencoderKL"},    {"act_fn", "silu"},         {"norm_num_groups", 32},
            {"sample_size", sd2 ? 768 : 512},     {"scaling_factor", 0.18215}, {"force_upcast", true},
            {"use_quant_conv", true},             {"use_post_quant_conv", true}};
  }
  // LatentDiffusion stores scale_factor as a buffer when it was fitted (scale_by_std).
  if (const TensorView* s = ck.find("scale_factor"); s && (side.vae_path.empty() || !side.vae.contains("scaling_factor"))) {
    check(s->numel() == 1 && !s->is_palettized(), ErrorCode::kModel,
          ck.path() + ": tensor 'scale_factor' has shape " + shape_str(s->shape) + ", expected a scalar");
    float f = to_f32(*s).f32()[0];
    check(std::isfinite(f) && f > 0, ErrorCode::kModel, ck.path() + ": tensor 'scale_factor' is not a positive number");
    base["scaling_factor"] = double(f);
    if (std::fabs(f - 0.18215f) > 1e-6f)
      warnings->push_back(ck.path() + ": VAE scaling factor " + std::to_string(f) + " from its 'scale_factor' tensor");
  }
  return merge_inferred(base, inferred, side.vae_path, ck.path());
}

json default_scheduler(bool sd2) {
  // SD v1.4's scheduler_config.json; stabilityai/stable-diffusion-2-1's (diffusers' single-file default for SD 2.x).
  json j = {{"beta_end", 0.012},          {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
            {"clip_sample", false},       {"num_train_timesteps", 1000},      {"set_alpha_to_one", false},
            {"skip_prk_steps", true},     {"steps_offset", 1},                {"trained_betas", nullptr}};
  j["_class_name"] = sd2 ? "DDIMScheduler" : "PNDMScheduler";
  if (sd2) j["prediction_type"] = "v_prediction";
  return j;
}

// A warning when the checkpoint's own noise schedule is not the one the default scheduler config assumes.
void check_betas(const Checkpoint& ck, std::vector<std::string>* warnings) {
  const TensorView* b = ck.find("betas");
  if (!b || b->is_palettized() || b->shape.size() != 1 || b->numel() < 2) return;
  if (b->dtype != DType::F32 && b->dtype != DType::F16 && b->dtype != DType::BF16 && b->dtype != DType::F64) return;
  Tensor t = to_f32(*b);
  const float first = t.f32()[0], last = t.f32()[t.numel() - 1];
  if (t.numel() != 1000 || std::fabs(first - 0.00085f) > 1e-3f * 0.00085f || std::fabs(last - 0.012f) > 1e-3f * 0.012f)
    warnings->push_back(ck.path() + ": its training schedule (" + std::to_string(t.numel()) + " betas from " +
                        std::to_string(first) + " to " + std::to_string(last) +
                        ") is not the default scaled_linear 0.00085..0.012 over 1000 steps; give the scheduler in "
                        "--config DIR/scheduler/scheduler_config.json");
}

// ---- tokenizer --------------------------------------------------------------------------------

std::vector<std::string> clip_vocab_candidates() {
  std::vector<std::string> c;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return c;
  const fs::path dir = exe.parent_path(), rel = fs::path("data") / "clip" / "bpe_simple_vocab_16e6.txt.gz";
  for (const fs::path& base : {dir, dir.parent_path(), dir.parent_path() / "share" / "sdpal"})
    c.push_back((base / rel).lexically_normal().string());
  return c;
}

std::string find_clip_vocab() {
  if (const char* env = std::getenv("SDPAL_CLIP_VOCAB"); env && *env) return env;
  for (const std::string& p : clip_vocab_candidates())
    if (fs::is_regular_file(p)) return p;
  return {};
}

ClipTokenizer ldm_tokenizer(const LdmComponents& c) {
  if (!c.tokenizer_dir.empty()) return ClipTokenizer::from_folder(c.tokenizer_dir);
  if (c.clip_vocab.empty()) {
    std::string tried;
    for (const std::string& p : clip_vocab_candidates()) tried += "\n  " + p;
    fail(ErrorCode::kModel, c.path + ": original checkpoints carry no tokenizer, and none was found. Give one: "
                                     "--config DIR with DIR/tokenizer/ (vocab.json, merges.txt), or "
                                     "SDPAL_CLIP_VOCAB=/path/to/bpe_simple_vocab_16e6.txt.gz (OpenAI CLIP's vocabulary), "
                                     "or install that file as one of:" + tried);
  }
  if (!fs::is_regular_file(c.clip_vocab))
    fail(ErrorCode::kIo, "SDPAL_CLIP_VOCAB names " + c.clip_vocab + ", which does not exist");
  // SD 2.x's tokenizer (stabilityai/stable-diffusion-2*) pads with "!" (id 0), SD 1.x's with <|endoftext|>.
  return ClipTokenizer::from_bpe_gz(c.clip_vocab, c.text_layout == "openclip" ? "!" : "");
}

WeightBinder ldm_binder(const std::shared_ptr<TensorFile>& f, const std::string& component, Precision p) {
  auto* lf = dynamic_cast<LdmTensorFile*>(f.get());
  check(lf != nullptr, ErrorCode::kInternal, "ldm_binder: not an LDM component file");
  WeightBinder w(component, {lf->keyed_by_source()});
  w.set_name_mapper(lf->mapper());
  w.set_precision(p);
  return w;
}

std::shared_ptr<TensorFile> open_file(const std::string& path) {
  check(fs::exists(path), ErrorCode::kIo, "checkpoint does not exist: " + path);
  check(fs::is_regular_file(path), ErrorCode::kIo, path + " is not a file");
  // torch.save writes a zip whatever the extension; safetensors starts with its header length, so a
  // legacy (pre-zip) pickle's magic only counts for a file not named .safetensors.
  auto f = MappedFile::open(path);
  const bool zip = ZipArchive::looks_like_zip(f->data(), f->size());
  const bool legacy_pickle = f->size() >= 2 && f->data()[0] == 0x80 && f->data()[1] <= 5;
  f.reset();
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (zip || (legacy_pickle && ext != ".safetensors")) return std::shared_ptr<TensorFile>(open_pickle_checkpoint(path));
  return std::shared_ptr<TensorFile>(open_safetensors(path));
}

}  // namespace

std::string LdmComponents::source_key(const std::string& component, const std::string& name) const {
  const TensorFile* f = component == "text_encoder" ? text_encoder.get()
                        : component == "unet"       ? unet.get()
                        : component == "vae"        ? vae.get()
                                                    : nullptr;
  auto* lf = dynamic_cast<const LdmTensorFile*>(f);
  return lf ? lf->source_key(name) : std::string();
}

LdmComponents open_ldm_checkpoint(const std::string& path, const std::string& config_dir) {
  return open_ldm_checkpoint(open_file(path), config_dir);
}

LdmComponents open_ldm_checkpoint(std::shared_ptr<TensorFile> file, const std::string& config_dir) {
  check(file != nullptr, ErrorCode::kInvalidArgument, "open_ldm_checkpoint: no file");
  const Checkpoint ck{file};
  const std::string& path = file->path();
  if (ck.any_with_prefix("conditioner.embedders."))
    fail(ErrorCode::kUnsupported, path + ": SDXL checkpoints (conditioner.embedders.*) are not supported; "
                                         "sdpal runs SD 1.x/2.x");
  if (!ck.any_with_prefix(kLdmUNetPrefix))
    fail(ErrorCode::kModel, path + ": not an original Stable Diffusion checkpoint (no model.diffusion_model.* tensors)");
  const Sidecar side = read_sidecar(config_dir);

  LdmComponents c;
  c.path = path;
  c.config_dir = config_dir;
  // Text encoder: SD 1.x CLIP or SD 2.x OpenCLIP, and how many of its layers the pipeline uses.
  LdmTextLayout tl;
  bool clip_text_model = true;
  int text_layers = 0;
  if (ck.any_with_prefix(kLdmOpenClipPrefix)) {
    tl = LdmTextLayout::kOpenClip;
    c.text_layout = "openclip";
    const int resblocks = ck.count(std::string(kLdmOpenClipPrefix) + "transformer.resblocks.");
    text_layers = resblocks - 1;  // "penultimate"
    if (side.text.contains("num_hidden_layers") && side.text["num_hidden_layers"].is_number_integer())
      text_layers = side.text["num_hidden_layers"].get<int>();
    if (text_layers < 1 || text_layers > resblocks)
      fail(ErrorCode::kModel, path + ": the OpenCLIP text encoder has " + std::to_string(resblocks) +
                                  " resblocks; cannot use " + std::to_string(text_layers) + " of them");
  } else if (ck.any_with_prefix(kLdmClipPrefix)) {
    tl = LdmTextLayout::kClip;
    c.text_layout = "clip";
    clip_text_model = ck.any_with_prefix(std::string(kLdmClipPrefix) + "text_model.");
    text_layers = ck.count(std::string(kLdmClipPrefix) + (clip_text_model ? "text_model." : "") + "encoder.layers.");
    if (text_layers < 1)
      fail(ErrorCode::kModel, path + ": no text encoder layers (cond_stage_model.transformer.text_model.encoder.layers.*)");
  } else {
    fail(ErrorCode::kModel, path + ": no text encoder (cond_stage_model.transformer.* or cond_stage_model.model.*)");
  }
  const LdmUNetLayout ul = infer_unet(ck);
  const LdmVaeLayout vl = infer_vae(ck);

  // The name table; strictness in both directions.
  const std::pair<const char*, std::vector<LdmEntry>> tables[] = {
      {"text_encoder", ldm_text_entries(tl, text_layers, clip_text_model)},
      {"unet", ldm_unet_entries(ul)},
      {"vae", ldm_vae_entries(vl)}};
  std::set<std::string> mapped;
  for (const auto& [comp, entries] : tables)
    for (const LdmEntry& e : entries) mapped.insert(e.key);
  std::vector<std::string> unknown;
  for (const TensorView& v : file->tensors()) {
    if (mapped.count(v.name) || v.name == "scale_factor") continue;  // scale_factor: read as the VAE's
    if (ldm_ignored_key(v.name, tl, text_layers)) c.ignored.push_back(v.name);
    else unknown.push_back(v.name);
  }
  if (!unknown.empty())
    fail(ErrorCode::kModel, path + ": unexpected tensor " + list_keys(unknown) +
                                " (not part of the SD " + (tl == LdmTextLayout::kClip ? "1.x" : "2.x") +
                                " checkpoint its other tensors describe, nor on the ignore list)");
  for (const auto& [comp, entries] : tables) {
    std::vector<std::string> missing;
    std::string first_name;
    for (const LdmEntry& e : entries) {
      if (ck.has(e.key) || std::find(missing.begin(), missing.end(), e.key) != missing.end()) continue;
      if (missing.empty()) first_name = e.name;
      missing.push_back(e.key);
    }
    if (!missing.empty())
      fail(ErrorCode::kModel, path + ": missing tensor " + list_keys(missing) + " (" + comp + " '" + first_name + "')");
  }

  // Views under diffusers' names.
  for (const auto& [comp, entries] : tables) {
    auto f = std::make_shared<LdmTensorFile>(path, file);
    for (const LdmEntry& e : entries) {
      const TensorView& src = *ck.find(e.key);
      TensorView v = src;
      v.name = e.name;
      if (!v.owner) v.owner = file;
      std::string key = e.key;
      auto bad_shape = [&](const std::string& want) {
        fail(ErrorCode::kModel, path + ": tensor '" + e.key + "' has shape " + shape_str(src.shape) + ", expected " + want);
      };
      if (e.squeeze) {
        if (src.shape.size() == 4 && src.shape[2] == 1 && src.shape[3] == 1) v.shape = {src.shape[0], src.shape[1]};
        else if (src.shape.size() != 2) bad_shape("[C, C, 1, 1]");
        if (src.is_palettized() && v.shape != src.shape) bad_shape("a dense tensor");
      }
      if (e.rows_part >= 0) {
        const bool weight = src.shape.size() == 2;
        if (src.is_palettized() || !src.data) bad_shape("a dense tensor");
        if (weight ? src.shape[0] != 3 * src.shape[1] : (src.shape.size() != 1 || src.shape[0] % 3 != 0))
          bad_shape(weight ? "[3*D, D]" : "[3*D]");
        const int64_t rows = src.shape[0] / 3, cols = weight ? src.shape[1] : 1;
        const size_t bytes = size_t(rows * cols) * dtype_size(src.dtype);
        v.data = src.data + size_t(e.rows_part) * bytes;
        v.nbytes = bytes;
        v.shape = weight ? Shape{rows, cols} : Shape{rows};
        key += "[rows " + std::to_string(e.rows_part * rows) + ":" + std::to_string((e.rows_part + 1) * rows) + "]";
      }
      f->add(std::move(v), key);
    }
    std::string name = comp;
    (name == "text_encoder" ? c.text_encoder : name == "unet" ? c.unet : c.vae) = f;
  }

  // Configs.
  const bool sd2 = tl == LdmTextLayout::kOpenClip;
  c.text_encoder_json = text_config_json(ck, tl, clip_text_model, text_layers, side);
  c.unet_json = unet_config_json(ck, ul, sd2, side);
  c.vae_json = vae_config_json(ck, vl, sd2, side, &c.warnings);
  auto where = [&](const std::string& p, const char* comp) { return p.empty() ? path + " (inferred " + comp + " config)" : p; };
  c.text_encoder_config = parse_clip_text_config(c.text_encoder_json, where(side.text_path, "text_encoder"));
  c.unet_config = parse_unet_config(c.unet_json, where(side.unet_path, "unet"));
  c.vae_config = parse_vae_config(c.vae_json, where(side.vae_path, "vae"));
  if (c.text_encoder_config.hidden_size != c.unet_config.cross_attention_dim)
    fail(ErrorCode::kModel, path + ": the text encoder's width " + std::to_string(c.text_encoder_config.hidden_size) +
                                " does not match the UNet's cross_attention_dim " +
                                std::to_string(c.unet_config.cross_attention_dim));
  if (!side.scheduler_path.empty()) {
    c.scheduler_json = side.scheduler;
  } else {
    c.scheduler_json = default_scheduler(sd2);
    check_betas(ck, &c.warnings);
    if (sd2)
      c.warnings.push_back(path + ": SD 2.x checkpoint without a --config scheduler: assuming the 768-v model "
                                  "(v-prediction, 768x768) as diffusers does; for 512-base models give --config DIR with "
                                  "scheduler/scheduler_config.json (prediction_type \"epsilon\") and unet/config.json "
                                  "(sample_size 64)");
  }
  c.tokenizer_dir = side.tokenizer_dir;
  if (c.tokenizer_dir.empty()) c.clip_vocab = find_clip_vocab();
  return c;
}

std::unique_ptr<StableDiffusionModel> load_ldm_checkpoint(const std::string& path, const LoadOptions& opts,
                                                          const std::string& config_dir) {
  require_precision_supported(opts.precision, path);
  LdmComponents c = open_ldm_checkpoint(path, config_dir);
  auto model = std::make_unique<StableDiffusionModel>();
  model->path = path;
  model->name = fs::path(path).stem().string();
  model->format = "ldm";
  model->precision = opts.precision;
  model->weight_files = {path};
  model->warnings = c.warnings;
  if (!opts.variant.empty())
    model->warnings.push_back("--variant " + opts.variant + " does not apply to a single-file checkpoint: ignored");
  model->tokenizer = std::make_unique<ClipTokenizer>(ldm_tokenizer(c));
  // Each network's builder; run now, or on first use when reduce_memory (model/lazy_networks.h).
  model->reduce_memory = opts.reduce_memory;
  const bool lazy = opts.reduce_memory;
  const Precision precision = opts.precision;
  auto shared = std::make_shared<const LdmComponents>(std::move(c));
  model->text_encoder = make_network<LazyTextEncoder, TextEncoderNetwork>(
      lazy, shared->text_encoder_config, [shared, precision]() {
        return bind_module<ClipTextEncoder, TextEncoderNetwork>(
            shared->text_encoder_config, ldm_binder(shared->text_encoder, "text_encoder", precision));
      });
  model->unet = make_network<LazyUNet, UNetNetwork>(lazy, shared->unet_config, [shared, precision]() {
    return bind_module<UNet, UNetNetwork>(shared->unet_config, ldm_binder(shared->unet, "unet", precision));
  });
  model->vae = make_network<LazyVaeDecoder, VaeDecoderNetwork>(
      lazy, shared->vae_config, [shared, precision]() -> std::unique_ptr<VaeDecoderNetwork> {
        WeightBinder w = ldm_binder(shared->vae, "vae", precision);
        auto net = std::make_unique<VaeDecoder>(shared->vae_config, w);
        // The decoder leaves "encoder." / "quant_conv." unused; this binder indexes them by checkpoint key.
        w.allow_unused_prefix(std::string(kLdmVaePrefix) + "encoder.");
        w.allow_unused_prefix(std::string(kLdmVaePrefix) + "quant_conv.");
        w.finish();
        return net;
      });
  model->scheduler_config = shared->scheduler_json;

  // A safety checker only comes from the --config folder (diffusers layout).
  const fs::path sc = config_dir.empty() ? fs::path() : fs::path(config_dir) / "safety_checker";
  if (opts.safety_checker && !config_dir.empty() && fs::is_regular_file(sc / "config.json")) {
    const std::string cfg = (sc / "config.json").string();
    ClipVisionConfig vc = parse_clip_vision_config(read_json_file(cfg), cfg);
    std::vector<std::shared_ptr<TensorFile>> files;
    for (const std::string& f : find_component_weights(sc.string(), "")) {
      files.push_back(std::shared_ptr<TensorFile>(open_safetensors(f)));
      model->weight_files.push_back(f);
    }
    model->safety_checker = make_network<LazySafetyChecker, SafetyCheckerNetwork>(
        lazy, vc, [vc, files, precision]() -> std::unique_ptr<SafetyCheckerNetwork> {
          WeightBinder w("safety_checker", files);
          w.set_precision(precision);
          auto net = std::make_unique<SafetyChecker>(vc, w);
          w.finish();
          return net;
        });
    const std::string fe = (fs::path(config_dir) / "feature_extractor" / "preprocessor_config.json").string();
    model->feature_extractor = parse_preprocessor_config(read_json_file(fe));
  } else if (opts.safety_checker) {
    model->warnings.push_back(path + ": original checkpoints carry no safety checker, so images are not checked "
                                     "(a --config folder with safety_checker/ and feature_extractor/ adds one)");
  }
  return model;
}

bool looks_like_ldm_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".safetensors";
}

}  // namespace sdpal
