// Original single-file (CompVis/LDM layout) checkpoints: tests/fixtures/tiny-sd-v1-ldm, made from the
// tiny diffusers fixture by tests/reference/make_ldm_checkpoint.py (and checked there with diffusers'
// own convert_from_ckpt). Weights must equal the diffusers fixture's exactly (.ckpt, fp32) or to fp16
// rounding (.safetensors); configs are inferred from shapes (full-size SD v1.4 / 2.1 from shape lists);
// unknown / missing keys are errors naming them; a pipeline run from the .ckpt gives exactly the
// diffusers folder's image, and the fp16 and SD 2.x files give diffusers' images (test_pipeline.cpp's
// tolerance: off by at most 1 on <= 0.1 % of the values).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "golden.h"
#include "io/safetensors.h"
#include "model/diffusers_folder.h"
#include "model/ldm_checkpoint.h"
#include "model/ldm_names.h"
#include "pipeline/txt2img.h"

namespace sdpal {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Golden;
using testing::repo_path;

const std::string kTiny = repo_path("tests/fixtures/tiny-sd-v1");
const std::string kLdm = repo_path("tests/fixtures/tiny-sd-v1-ldm");
const std::string kCkpt = kLdm + "/tiny-sd-v1.ckpt";
const std::string kSt16 = kLdm + "/tiny-sd-v1.safetensors";
const std::string kV2 = kLdm + "/tiny-sd-v2.safetensors";
const std::string kBpeGz = std::string(SDPAL_SOURCE_DIR) + "/../shared/data/clip/bpe_simple_vocab_16e6.txt.gz";

// Sets (or unsets, value nullptr) an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

template <class F>
void expect_error(F&& fn, ErrorCode code, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no error, expected one mentioning " << needles.front();
  } catch (const Error& e) {
    EXPECT_EQ(int(e.code()), int(code)) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << n << " in: " << e.what();
  }
}

class LdmTemp : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdpal_ldm_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A --config folder holding copies of the given tiny-sd-v1 parts.
  std::string config_dir(const std::vector<std::string>& parts, const std::string& name = "config") {
    std::string d = dir_ + "/" + name;
    for (const auto& p : parts) {
      fs::create_directories(d + "/" + p);
      fs::copy(kTiny + "/" + p, d + "/" + p, fs::copy_options::recursive);
    }
    return d;
  }
  // tiny-sd-v1.safetensors rewritten with `edit` applied to its tensor list.
  template <class F>
  std::string rewrite(const std::string& name, F&& edit) {
    auto src = open_safetensors(kSt16);
    std::vector<TensorToWrite> t;
    for (const TensorView& v : src->tensors()) t.push_back(TensorToWrite::from(v));
    edit(t);
    std::string p = dir_ + "/" + name;
    write_safetensors(p, t);
    return p;
  }
  std::string dir_;
};

json read_json(const std::string& p) { return read_json_file(p); }

void expect_same(const UNetConfig& a, const UNetConfig& b) {
  EXPECT_EQ(a.in_channels, b.in_channels);
  EXPECT_EQ(a.out_channels, b.out_channels);
  EXPECT_EQ(a.sample_size, b.sample_size);
  EXPECT_EQ(a.block_out_channels, b.block_out_channels);
  EXPECT_EQ(a.down_block_types, b.down_block_types);
  EXPECT_EQ(a.up_block_types, b.up_block_types);
  EXPECT_EQ(a.mid_block_type, b.mid_block_type);
  EXPECT_EQ(a.layers_per_block, b.layers_per_block);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.cross_attention_dim, b.cross_attention_dim);
  EXPECT_EQ(a.norm_num_groups, b.norm_num_groups);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.use_linear_projection, b.use_linear_projection);
  EXPECT_EQ(a.transformer_layers_per_block, b.transformer_layers_per_block);
  EXPECT_EQ(a.flip_sin_to_cos, b.flip_sin_to_cos);
  EXPECT_EQ(a.freq_shift, b.freq_shift);
  EXPECT_EQ(a.upcast_attention, b.upcast_attention);
}
void expect_same(const VaeConfig& a, const VaeConfig& b) {
  EXPECT_EQ(a.in_channels, b.in_channels);
  EXPECT_EQ(a.out_channels, b.out_channels);
  EXPECT_EQ(a.latent_channels, b.latent_channels);
  EXPECT_EQ(a.sample_size, b.sample_size);
  EXPECT_EQ(a.block_out_channels, b.block_out_channels);
  EXPECT_EQ(a.layers_per_block, b.layers_per_block);
  EXPECT_EQ(a.norm_num_groups, b.norm_num_groups);
  EXPECT_EQ(a.scaling_factor, b.scaling_factor);
  EXPECT_EQ(a.mid_block_add_attention, b.mid_block_add_attention);
}
void expect_same(const ClipTextConfig& a, const ClipTextConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.max_positions, b.max_positions);
  EXPECT_EQ(a.layer_norm_eps, b.layer_norm_eps);
  EXPECT_EQ(int(a.act), int(b.act));
}

// Every tensor of the diffusers fixture's component is in the mapped component, same name, shape and
// value (fp16: the fp16 rounding of the fixture's fp32 value), and nothing else is.
void expect_fixture_weights(const LdmComponents& c, bool fp16) {
  const std::pair<std::string, std::shared_ptr<TensorFile>> comps[] = {
      {"text_encoder", c.text_encoder}, {"unet", c.unet}, {"vae", c.vae}};
  size_t total = 0;
  for (const auto& [comp, file] : comps) {
    auto ref = open_safetensors(find_component_weights(kTiny + "/" + comp, "").at(0));
    EXPECT_EQ(file->tensors().size(), ref->tensors().size()) << comp;
    for (const TensorView& want : ref->tensors()) {
      const TensorView* got = file->find(want.name);
      ASSERT_NE(got, nullptr) << comp << ": no " << want.name;
      ASSERT_EQ(got->shape, want.shape) << comp << ": " << want.name;
      EXPECT_EQ(got->dtype, fp16 ? DType::F16 : DType::F32) << want.name;
      Tensor a = to_f32(*got), b = to_f32(want);
      if (fp16)
        for (int64_t i = 0; i < b.numel(); ++i) b.f32()[i] = f16_to_f32(f32_to_f16(b.f32()[i]));
      EXPECT_EQ(0, std::memcmp(a.f32(), b.f32(), size_t(a.numel()) * 4)) << comp << ": " << want.name;
      ++total;
    }
  }
  EXPECT_EQ(total, 656u);  // make_ldm_checkpoint.py: all 656 diffusers parameters
}

TEST(LdmCheckpoint, CkptWeightsEqualDiffusersFixture) {
  LdmComponents c = open_ldm_checkpoint(kCkpt, kTiny);
  EXPECT_EQ(c.text_layout, "clip");
  expect_fixture_weights(c, false);
  // The views point into the checkpoint: VAE attention 1x1 convs as [C, C] without a copy.
  const TensorView* q = c.vae->find("decoder.mid_block.attentions.0.to_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (Shape{32, 32}));
  EXPECT_EQ(c.source_key("vae", "decoder.mid_block.attentions.0.to_q.weight"), "first_stage_model.decoder.mid.attn_1.q.weight");
  EXPECT_EQ(c.source_key("unet", "down_blocks.1.downsamplers.0.conv.weight"), "model.diffusion_model.input_blocks.4.0.op.weight");
  EXPECT_EQ(c.source_key("unet", "up_blocks.0.upsamplers.0.conv.bias"), "model.diffusion_model.output_blocks.1.1.conv.bias");
  EXPECT_EQ(c.source_key("unet", "up_blocks.1.upsamplers.0.conv.bias"), "model.diffusion_model.output_blocks.3.2.conv.bias");
  EXPECT_EQ(c.source_key("vae", "decoder.up_blocks.0.resnets.1.conv1.weight"), "first_stage_model.decoder.up.3.block.1.conv1.weight");
  // Ignored on purpose: 12 schedule buffers, position_ids, model_ema.decay / num_updates.
  EXPECT_EQ(c.ignored.size(), 15u);
  EXPECT_NE(std::find(c.ignored.begin(), c.ignored.end(), "cond_stage_model.transformer.text_model.embeddings.position_ids"),
            c.ignored.end());
}

TEST(LdmCheckpoint, Fp16SafetensorsWeightsAreTheFixturesRounded) {
  expect_fixture_weights(open_ldm_checkpoint(kSt16, kTiny), true);
}

TEST(LdmCheckpoint, ConfigFolderGivesTheFixtureConfigs) {
  LdmComponents c = open_ldm_checkpoint(kCkpt, kTiny);
  expect_same(c.unet_config, parse_unet_config(read_json(kTiny + "/unet/config.json"), "unet"));
  expect_same(c.vae_config, parse_vae_config(read_json(kTiny + "/vae/config.json"), "vae"));
  expect_same(c.text_encoder_config, parse_clip_text_config(read_json(kTiny + "/text_encoder/config.json"), "te"));
  EXPECT_EQ(c.scheduler_json, read_json(kTiny + "/scheduler/scheduler_config.json"));
  EXPECT_EQ(c.tokenizer_dir, kTiny + "/tokenizer");
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
}

TEST_F(LdmTemp, InfersTheUNetFromShapes) {
  // Without unet/config.json: everything shapes give, SD v1 defaults for the rest (8 heads, 32 groups).
  LdmComponents c = open_ldm_checkpoint(kSt16, config_dir({"text_encoder", "vae"}));
  const UNetConfig& u = c.unet_config;
  EXPECT_EQ(u.block_out_channels, (std::vector<int>{32, 32, 64, 64}));
  EXPECT_EQ(u.layers_per_block, 1);
  EXPECT_EQ(u.in_channels, 4);
  EXPECT_EQ(u.out_channels, 4);
  EXPECT_EQ(u.cross_attention_dim, 32);
  EXPECT_FALSE(u.use_linear_projection);
  EXPECT_EQ(u.down_block_types, (std::vector<std::string>{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                          "CrossAttnDownBlock2D", "DownBlock2D"}));
  EXPECT_EQ(u.up_block_types,
            (std::vector<std::string>{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}));
  EXPECT_EQ(u.num_heads, (std::vector<int>{8, 8, 8, 8}));  // = the fixture's (SD v1: 8 heads)
  EXPECT_EQ(u.norm_num_groups, 32);                         // not in the shapes: the default
  EXPECT_EQ(c.unet_json["sample_size"], 64);
  EXPECT_EQ(c.scheduler_json["_class_name"], "PNDMScheduler");
  EXPECT_TRUE(c.tokenizer_dir.empty());
}

TEST(LdmCheckpoint, TinyTextEncoderNeedsItsHeads) {
  // Width 32 is no multiple of the head dimension 64: the heads must come from --config.
  expect_error([] { open_ldm_checkpoint(kSt16); }, ErrorCode::kModel, {kSt16, "text_encoder/config.json"});
}

// ---- full-size checkpoints, from their shapes -------------------------------------------------

// A checkpoint that has only shapes: every view points at one zeroed buffer, large enough for the
// row slices of a fused in_proj (the only views whose pointers are computed); nothing else is read
// but the schedule buffers.
class ShapeFile : public TensorFile {
 public:
  ShapeFile(std::string path, const json& tensors) : path_(std::move(path)) {
    size_t biggest = 1 << 16;
    for (const auto& [k, s] : tensors.items())
      if (k.find("in_proj") != std::string::npos) biggest = std::max(biggest, size_t(shape_numel(s.get<Shape>())) * 2);
    buf_.assign(biggest, 0);
    for (const auto& [k, s] : tensors.items()) {
      TensorView v;
      v.name = k;
      v.dtype = DType::F16;
      v.shape = s.get<Shape>();
      v.data = buf_.data();
      v.nbytes = size_t(v.numel()) * 2;
      views_.push_back(v);
    }
    for (size_t i = 0; i < views_.size(); ++i) index_[views_[i].name] = i;
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorView>& tensors() const override { return views_; }
  const TensorView* find(const std::string& n) const override {
    auto it = index_.find(n);
    return it == index_.end() ? nullptr : &views_[it->second];
  }

 private:
  std::string path_;
  std::vector<uint8_t> buf_;
  std::vector<TensorView> views_;
  std::map<std::string, size_t> index_;
};

struct FullSize {
  LdmComponents c;
  json expected;
  size_t n_tensors = 0;
};

FullSize open_manifest(const std::string& name) {
  json m = read_json(kLdm + "/" + name);
  auto file = std::make_shared<ShapeFile>(name, m.at("tensors"));
  FullSize f{open_ldm_checkpoint(file), m.at("expected"), file->tensors().size()};
  expect_same(f.c.unet_config, parse_unet_config(f.expected["unet_config"], name));
  expect_same(f.c.vae_config, parse_vae_config(f.expected["vae_config"], name));
  expect_same(f.c.text_encoder_config, parse_clip_text_config(f.expected["text_encoder_config"], name));
  EXPECT_EQ(f.c.unet->tensors().size(), f.expected["counts"]["unet"].get<size_t>());
  EXPECT_EQ(f.c.vae->tensors().size(), f.expected["counts"]["vae"].get<size_t>());
  EXPECT_EQ(f.c.text_encoder->tensors().size(), f.expected["counts"]["text_encoder"].get<size_t>());
  return f;
}

TEST(LdmCheckpoint, InfersSd14FromFullSizeShapes) {
  FullSize f = open_manifest("shapes-sd14-full-ema.json");
  EXPECT_EQ(f.c.text_layout, "clip");
  EXPECT_EQ(f.c.ignored.size(), 686u + 2 + 12 + 1);  // EMA copies + decay/num_updates, schedule, position_ids
  EXPECT_EQ(f.c.scheduler_json["_class_name"], "PNDMScheduler");
  EXPECT_FALSE(f.c.scheduler_json.contains("prediction_type"));
  EXPECT_EQ(f.c.unet_json["sample_size"], 64);
}

TEST(LdmCheckpoint, InfersSd21FromFullSizeShapes) {
  FullSize f = open_manifest("shapes-sd21.json");
  EXPECT_EQ(f.c.text_layout, "openclip");
  EXPECT_EQ(f.c.text_encoder_config.num_layers, 23);  // 24 resblocks, the last unused
  EXPECT_EQ(f.c.ignored.size(), 12u + 2 + 12);         // resblocks.23, text_projection + logit_scale, schedule
  EXPECT_NE(std::find(f.c.ignored.begin(), f.c.ignored.end(), "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight"),
            f.c.ignored.end());
  EXPECT_EQ(f.c.scheduler_json["prediction_type"], "v_prediction");
  EXPECT_EQ(f.c.unet_json["sample_size"], 96);
  ASSERT_FALSE(f.c.warnings.empty());
  EXPECT_NE(f.c.warnings.back().find("768-v"), std::string::npos);
  // q, k, v: row thirds of the fused in_proj, no copies.
  const std::string l = "text_model.encoder.layers.5.self_attn.";
  const TensorView* q = f.c.text_encoder->find(l + "q_proj.weight");
  const TensorView* k = f.c.text_encoder->find(l + "k_proj.weight");
  const TensorView* v = f.c.text_encoder->find(l + "v_proj.bias");
  ASSERT_TRUE(q && k && v);
  EXPECT_EQ(q->shape, (Shape{1024, 1024}));
  EXPECT_EQ(k->data, q->data + 1024 * 1024 * 2);
  EXPECT_EQ(v->shape, (Shape{1024}));
  EXPECT_EQ(f.c.source_key("text_encoder", l + "k_proj.weight"),
            "cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight[rows 1024:2048]");
}

// ---- strictness -----------------------------------------------------------------------------

TEST_F(LdmTemp, UnknownKeyIsAnError) {
  static const float two[2] = {1, 2};
  std::string p = rewrite("extra.safetensors", [](std::vector<TensorToWrite>& t) {
    t.push_back({"model.diffusion_model.label_emb.0.0.weight", DType::F32, {2}, two, 8});
  });
  expect_error([&] { open_ldm_checkpoint(p, kTiny); }, ErrorCode::kModel,
               {p, "'model.diffusion_model.label_emb.0.0.weight'", "unexpected"});
}

TEST_F(LdmTemp, MissingKeyIsAnError) {
  const std::string key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight";
  std::string p = rewrite("missing.safetensors", [&](std::vector<TensorToWrite>& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [&](const TensorToWrite& w) { return w.name == key; }), t.end());
  });
  expect_error([&] { open_ldm_checkpoint(p, kTiny); }, ErrorCode::kModel,
               {p, "missing tensor '" + key + "'", "unet 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight'"});
}

TEST_F(LdmTemp, IgnoredKeysAreListed) {
  static const float two[2] = {1, 2};
  std::string p = rewrite("ema.safetensors", [](std::vector<TensorToWrite>& t) {
    t.push_back({"model_ema.diffusion_modelout2bias", DType::F32, {2}, two, 8});
    t.push_back({"logvar", DType::F32, {2}, two, 8});
  });
  LdmComponents c = open_ldm_checkpoint(p, kTiny);
  for (const char* k : {"model_ema.diffusion_modelout2bias", "logvar", "betas", "model_ema.decay"})
    EXPECT_NE(std::find(c.ignored.begin(), c.ignored.end(), k), c.ignored.end()) << k;
}

TEST_F(LdmTemp, RejectsSdxl) {
  static const float two[2] = {1, 2};
  std::string p = rewrite("xl.safetensors", [](std::vector<TensorToWrite>& t) {
    t.push_back({"conditioner.embedders.1.model.positional_embedding", DType::F32, {2}, two, 8});
  });
  expect_error([&] { open_ldm_checkpoint(p, kTiny); }, ErrorCode::kUnsupported, {p, "SDXL"});
}

TEST_F(LdmTemp, ConfigThatContradictsTheTensorsIsAnError) {
  std::string d = config_dir({"text_encoder", "vae", "unet"});
  json u = read_json(d + "/unet/config.json");
  u["layers_per_block"] = 2;
  std::ofstream(d + "/unet/config.json") << u.dump();
  expect_error([&] { open_ldm_checkpoint(kSt16, d); }, ErrorCode::kModel,
               {d + "/unet/config.json", "'layers_per_block' is 2", kSt16});
}

TEST_F(LdmTemp, WrongShapeNamesTheCheckpointKey) {
  static const float v[127] = {};
  std::string p = rewrite("shape.safetensors", [](std::vector<TensorToWrite>& t) {
    for (auto& w : t)
      if (w.name == "model.diffusion_model.time_embed.0.bias") w = {w.name, DType::F32, {127}, v, sizeof v};
  });
  LoadOptions o;
  o.safety_checker = false;
  expect_error([&] { load_ldm_checkpoint(p, o, kTiny); }, ErrorCode::kModel,
               {p, "'time_embedding.linear_1.bias' (stored as 'model.diffusion_model.time_embed.0.bias')", "[127]"});
}

TEST_F(LdmTemp, TokenizerMustBeFound) {
  LoadOptions o;
  o.safety_checker = false;
  std::string d = config_dir({"text_encoder", "vae", "unet", "scheduler"});
  {
    ScopedEnv env("SDPAL_CLIP_VOCAB", nullptr);
    // (Unless a vocabulary is installed next to this test executable.)
    if (open_ldm_checkpoint(kSt16, d).clip_vocab.empty())
      expect_error([&] { load_ldm_checkpoint(kSt16, o, d); }, ErrorCode::kModel, {kSt16, "no tokenizer", "SDPAL_CLIP_VOCAB"});
  }
  {
    ScopedEnv env("SDPAL_CLIP_VOCAB", "/nonexistent/bpe.txt.gz");
    expect_error([&] { load_ldm_checkpoint(kSt16, o, d); }, ErrorCode::kIo, {"/nonexistent/bpe.txt.gz"});
  }
}

TEST(LdmCheckpoint, LooksLikeCheckpoint) {
  EXPECT_TRUE(looks_like_ldm_checkpoint(kCkpt));
  EXPECT_TRUE(looks_like_ldm_checkpoint(kSt16));
  EXPECT_FALSE(looks_like_ldm_checkpoint(kTiny));
  EXPECT_FALSE(looks_like_ldm_checkpoint(kLdm + "/absent.ckpt"));
  EXPECT_FALSE(looks_like_ldm_checkpoint(kLdm + "/README.md"));
}

// ---- pipelines --------------------------------------------------------------------------------

GenerateParams run_params() {
  json r = read_json(kLdm + "/expected.json").at("params");
  GenerateParams p;
  p.prompt = r.at("prompt").get<std::string>();
  p.negative_prompt = r.at("negative_prompt").get<std::string>();
  p.steps = r.at("steps").get<int>();
  p.guidance = r.at("guidance").get<float>();
  p.seed = r.at("seed").get<uint64_t>();
  p.width = r.at("width").get<int>();
  p.height = r.at("height").get<int>();
  p.safety_checker = false;
  return p;
}

// test_pipeline.cpp's tolerance for diffusers' uint8 images.
void expect_image_close(const RgbImage& im, const std::vector<uint8_t>& want, const std::string& what) {
  ASSERT_EQ(im.pixels.size(), want.size()) << what;
  size_t off = 0;
  int max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    int d = std::abs(int(im.pixels[i]) - int(want[i]));
    off += d != 0;
    max_diff = std::max(max_diff, d);
  }
  std::printf("%s: %zu of %zu image values differ from diffusers' (max %d)\n", what.c_str(), off, want.size(), max_diff);
  EXPECT_LE(max_diff, 1) << what;
  EXPECT_LE(double(off) / double(want.size()), 0.001) << what << ": " << off << " of " << want.size() << " differ";
}

TEST(LdmCheckpoint, CkptImageEqualsTheDiffusersFolders) {
  LoadOptions o;
  auto folder = load_diffusers_folder(kTiny, o);
  auto ldm = load_ldm_checkpoint(kCkpt, o, kTiny);
  EXPECT_EQ(ldm->format, "ldm");
  EXPECT_EQ(ldm->name, "tiny-sd-v1");
  EXPECT_EQ(ldm->weight_files.front(), kCkpt);
  EXPECT_NE(ldm->safety_checker, nullptr);  // from the --config folder
  EXPECT_TRUE(ldm->warnings.empty()) << ldm->warnings.front();
  GenerateParams p = run_params();
  p.width = p.height = 64;  // identical weights: a small run shows it as well as a large one
  p.steps = 3;
  GenerateResult a = txt2img(*folder, p), b = txt2img(*ldm, p);
  ASSERT_EQ(a.images.size(), 1u);
  ASSERT_EQ(b.images.size(), 1u);
  EXPECT_EQ(a.timesteps, b.timesteps);
  EXPECT_TRUE(a.images[0].pixels == b.images[0].pixels) << "identical weights must give the identical image";
}

TEST_F(LdmTemp, Fp16SafetensorsMatchesDiffusers) {
  // Tokenizer from CLIP's bpe vocabulary (no tokenizer/ in --config): the same ids as the fixture's.
  ScopedEnv env("SDPAL_CLIP_VOCAB", kBpeGz.c_str());
  LoadOptions o;
  auto m = load_ldm_checkpoint(kSt16, o, config_dir({"text_encoder", "vae", "unet", "scheduler"}));
  ASSERT_EQ(m->warnings.size(), 1u);
  EXPECT_NE(m->warnings[0].find("no safety checker"), std::string::npos) << m->warnings[0];
  Golden g("tests/fixtures/tiny-sd-v1-ldm/expected.safetensors");
  GenerateParams p = run_params();
  std::vector<int64_t> ids = g.ints("v1_fp16.input_ids");
  std::vector<int32_t> got = m->tokenizer->encode_padded(""), cond = m->tokenizer->encode_padded(p.prompt);
  got.insert(got.end(), cond.begin(), cond.end());
  EXPECT_EQ(std::vector<int64_t>(got.begin(), got.end()), ids);
  testing::expect_close(encode_prompts(*m, {"", p.prompt}), g.f32("v1_fp16.prompt_embeds"), 1e-5, "prompt_embeds");
  GenerateResult r = txt2img(*m, p);
  expect_image_close(r.images.at(0), g.u8("v1_fp16.image_uint8"), "v1 fp16");
}

TEST_F(LdmTemp, Sd2TinyMatchesDiffusers) {
  // --config: tiny-sd-v2-config plus tiny-sd-v1's vocabulary with SD 2.x's pad token "!".
  std::string d = dir_ + "/v2config";
  fs::copy(kLdm + "/tiny-sd-v2-config", d, fs::copy_options::recursive);
  fs::create_directories(d + "/tokenizer");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
    fs::copy_file(kTiny + "/tokenizer/" + f, d + "/tokenizer/" + f);
  std::ofstream(d + "/tokenizer/special_tokens_map.json")
      << R"({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!", "unk_token": "<|endoftext|>"})";

  LdmComponents c = open_ldm_checkpoint(kV2, d);
  EXPECT_EQ(c.text_layout, "openclip");
  EXPECT_EQ(c.text_encoder_config.num_layers, 2);  // 3 resblocks, the last unused
  EXPECT_EQ(int(c.text_encoder_config.act), int(Activation::Gelu));
  EXPECT_TRUE(c.unet_config.use_linear_projection);
  EXPECT_EQ(c.unet_config.num_heads, (std::vector<int>{2, 2, 4, 4}));
  EXPECT_EQ(c.unet_config.layers_per_block, 2);
  EXPECT_EQ(c.vae_config.layers_per_block, 2);
  EXPECT_EQ(c.ignored.size(), 12u + 2 + 12);  // resblocks.2, text_projection + logit_scale, schedule
  EXPECT_EQ(c.scheduler_json["prediction_type"], "v_prediction");
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();

  LoadOptions o;
  o.safety_checker = false;
  auto m = load_ldm_checkpoint(kV2, o, d);
  EXPECT_TRUE(m->warnings.empty()) << m->warnings.front();
  Golden g("tests/fixtures/tiny-sd-v1-ldm/expected.safetensors");
  GenerateParams p = run_params();
  std::vector<int32_t> got = m->tokenizer->encode_padded(""), cond = m->tokenizer->encode_padded(p.prompt);
  got.insert(got.end(), cond.begin(), cond.end());
  EXPECT_EQ(std::vector<int64_t>(got.begin(), got.end()), g.ints("v2.input_ids"));
  EXPECT_EQ(got.back(), 0);  // padded with "!"
  testing::expect_close(encode_prompts(*m, {"", p.prompt}), g.f32("v2.prompt_embeds"), 1e-5, "prompt_embeds");
  GenerateResult r = txt2img(*m, p);
  EXPECT_EQ(r.sampler_name, "DDIMScheduler");
  expect_image_close(r.images.at(0), g.u8("v2.image_uint8"), "v2");
}

TEST(LdmCheckpoint, Sd2TinyNeedsItsHeads) {
  expect_error([] { open_ldm_checkpoint(kV2); }, ErrorCode::kModel, {kV2, "--config"});
}

}  // namespace
}  // namespace sdpal
