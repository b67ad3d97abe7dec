// The sdpal single-file format (io/sdpal_file.h): round trips, hostile files, and loading a
// converted model (model/sdpal_model.h) into the same modules as its diffusers folder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "io/sdpal_file.h"
#include "model/sdpal_model.h"
#include "pipeline/txt2img.h"
#include "quant/palettize.h"
#include "test_util.h"

namespace sdpal {
namespace {

namespace fs = std::filesystem;
using testing::code_of;

const std::string kTiny = std::string(SDPAL_SOURCE_DIR) + "/tests/fixtures/tiny-sd-v1";

class SdpalFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdpal_file_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.f, 0.1f);
    dense_f32_.resize(16 * 8);
    for (auto& x : dense_f32_) x = normal(rng);
    conv_.resize(8 * 4 * 3 * 3 * 4);  // [32, 4, 3, 3] as F16
    for (auto& h : conv_) h = f32_to_f16(normal(rng));
    position_ids_.resize(77);
    for (size_t i = 0; i < position_ids_.size(); ++i) position_ids_[i] = int64_t(i);
    per_tensor_ = palettize(f16("conv.weight", {32, 4, 3, 3}, conv_), PalettizeOptions{4, 0});
    grouped_ = palettize(f16("conv2.weight", {32, 4, 3, 3}, conv_), PalettizeOptions{6, 8});
    pv1_ = per_tensor_.view();
    pv2_ = grouped_.view();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static TensorView f16(const std::string& name, const Shape& shape, const std::vector<uint16_t>& d) {
    TensorView v;
    v.name = name;
    v.dtype = DType::F16;
    v.shape = shape;
    v.data = reinterpret_cast<const uint8_t*>(d.data());
    v.nbytes = d.size() * 2;
    return v;
  }

  SdpalModelToWrite model() const {
    SdpalModelToWrite m;
    SdpalComponentToWrite te{"text_encoder", R"({"hidden_size": 8})", {}};
    te.tensors.push_back({"proj.weight", {"", DType::F32, {16, 8}, dense_f32_.data(), dense_f32_.size() * 4}, nullptr});
    te.tensors.push_back({"text_model.embeddings.position_ids",
                          {"", DType::I64, {1, 77}, position_ids_.data(), position_ids_.size() * 8}, nullptr});
    SdpalComponentToWrite unet{"unet", R"({"sample_size": 16})", {}};
    unet.tensors.push_back({"conv.weight", {}, &pv1_});
    unet.tensors.push_back({"conv2.weight", {}, &pv2_});
    unet.tensors.push_back({"conv_dense.weight", {"", DType::F16, {32, 4, 3, 3}, conv_.data(), conv_.size() * 2}, nullptr});
    m.components = {te, unet};
    m.model_index_json = R"({"_class_name": "StableDiffusionPipeline"})";
    m.scheduler_json = R"({"_class_name": "PNDMScheduler"})";
    m.vocab_json = R"({"a</w>": 0})";
    m.merges_txt = "#version: 0.2\n";
    m.extra_metadata["sdpal.source"] = "unit test";
    return m;
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // A raw safetensors file with the sdpal metadata `meta` (defaults filled in) and `tensors`.
  std::string raw(const std::string& name, std::map<std::string, std::string> meta,
                  const std::vector<TensorToWrite>& tensors) {
    meta.emplace("format", "sdpal");
    meta.emplace("sdpal.version", "1");
    meta.emplace("sdpal.config.unet", "{}");
    const std::string p = path(name);
    write_safetensors(p, tensors, meta);
    return p;
  }

  // Expects SdpalFile::open to fail with `code`, naming the file and `needle`.
  static void expect_error(const std::string& p, ErrorCode code, const std::string& needle) {
    std::string msg;
    EXPECT_EQ(code_of([&] { SdpalFile::open(p); }, &msg), code) << msg;
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "want '" << needle << "' in: " << msg;
  }

  std::string dir_;
  std::vector<float> dense_f32_;
  std::vector<uint16_t> conv_;
  std::vector<int64_t> position_ids_;
  PalettizedTensor per_tensor_, grouped_;
  PalettizedView pv1_, pv2_;
};

TEST_F(SdpalFileTest, RoundTrip) {
  const std::string p = path("m.safetensors");
  write_sdpal_file(p, model());
  EXPECT_TRUE(looks_like_sdpal_file(p));
  const auto f = SdpalFile::open(p);
  EXPECT_EQ(f->components(), (std::vector<std::string>{"text_encoder", "unet"}));
  EXPECT_FALSE(f->has_component("vae"));
  EXPECT_EQ(code_of([&] { f->component("vae"); }), ErrorCode::kModel);
  EXPECT_EQ(f->config("unet"), R"({"sample_size": 16})");
  EXPECT_EQ(f->metadata("sdpal.tokenizer.merges"), "#version: 0.2\n");
  EXPECT_EQ(f->metadata("sdpal.source"), "unit test");
  EXPECT_EQ(f->palettized().size(), 2u);
  EXPECT_EQ(f->palettized().at("unet.conv2.weight").lut_shape, (Shape{4, 1, 1, 1, 64, 1}));

  auto te = f->component("text_encoder");
  ASSERT_EQ(te->tensors().size(), 2u);
  const TensorView* w = te->find("proj.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F32);
  EXPECT_EQ(std::memcmp(w->data, dense_f32_.data(), w->nbytes), 0);
  EXPECT_NE(te->find("text_model.embeddings.position_ids"), nullptr);

  auto unet = f->component("unet");
  EXPECT_EQ(unet->path(), p);
  for (const auto& [name, orig] : {std::pair{"conv.weight", &per_tensor_}, std::pair{"conv2.weight", &grouped_}}) {
    const TensorView* v = unet->find(name);
    ASSERT_NE(v, nullptr) << name;
    ASSERT_TRUE(v->is_palettized());
    EXPECT_EQ(v->data, nullptr);  // never expanded
    EXPECT_NE(v->owner, nullptr);
    EXPECT_EQ(v->shape, orig->shape);
    EXPECT_EQ(v->palettized->nbits, orig->nbits);
    EXPECT_EQ(v->nbytes, orig->indices.size() + orig->lut.size() * 2);
    EXPECT_EQ(std::memcmp(v->palettized->indices, orig->indices.data(), orig->indices.size()), 0);
    const Tensor got = to_f32(*v);
    std::vector<float> want(size_t(got.numel()));
    decode_palettized(orig->view(), 0, got.numel(), want.data());
    EXPECT_EQ(std::memcmp(got.f32(), want.data(), want.size() * 4), 0) << name;
  }
  // The views outlive the file object.
  const TensorView* kept = unet->find("conv.weight");
  const TensorView copy = *kept;
  const auto unet_file = unet;
  (void)unet_file;
  EXPECT_NO_THROW(to_f32(copy));
}

TEST_F(SdpalFileTest, WriterRejectsBadInput) {
  const std::string p = path("bad.safetensors");
  std::string msg;
  auto m = model();
  m.components[1].tensors[2].name = "x.indices";
  EXPECT_EQ(code_of([&] { write_sdpal_file(p, m); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("unet.x.indices"), std::string::npos) << msg;
  m = model();
  m.components[1].tensors[2].name = "conv.weight";
  EXPECT_EQ(code_of([&] { write_sdpal_file(p, m); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("given twice"), std::string::npos) << msg;
  m = model();
  m.components[1].name = "text_encoder";
  EXPECT_EQ(code_of([&] { write_sdpal_file(p, m); }), ErrorCode::kInvalidArgument);
  m = model();
  m.components[0].name = "clip";
  EXPECT_EQ(code_of([&] { write_sdpal_file(p, m); }), ErrorCode::kInvalidArgument);
  m = model();
  m.components[0].config_json = "{ nope";
  EXPECT_EQ(code_of([&] { write_sdpal_file(p, m); }, &msg), ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("text_encoder config"), std::string::npos) << msg;
  m = model();
  PalettizedView f32lut = pv1_;
  f32lut.lut_dtype = DType::F32;
  f32lut.lut_nbytes *= 2;
  std::vector<uint8_t> big(f32lut.lut_nbytes);
  f32lut.lut = big.data();
  m.components[1].tensors[0].palettized = &f32lut;
  EXPECT_EQ(code_of([&] { write_sdpal_file(p, m); }), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(p));  // nothing half-written
}

TEST_F(SdpalFileTest, RejectsMaliciousFiles) {
  const auto& idx = per_tensor_.indices;
  const auto& lut = per_tensor_.lut;
  const std::string pal = R"({"unet.w": {"nbits": 4, "shape": [32, 4, 3, 3], "lut_shape": [16]}})";
  const TensorToWrite good_idx{"unet.w.indices", DType::U8, {int64_t(idx.size())}, idx.data(), idx.size()};
  const TensorToWrite good_lut{"unet.w.lut", DType::F16, {16}, lut.data(), lut.size() * 2};
  // The well-formed file opens.
  EXPECT_NO_THROW(SdpalFile::open(raw("ok.safetensors", {{"sdpal.palettized", pal}}, {good_idx, good_lut})));

  expect_error(raw("noformat.safetensors", {{"format", "pt"}}, {}), ErrorCode::kFormat, "not an sdpal file");
  expect_error(raw("v2.safetensors", {{"sdpal.version", "2"}}, {}), ErrorCode::kUnsupported, "version '2'");
  expect_error(raw("badjson.safetensors", {{"sdpal.palettized", "{\"unet.w\": "}}, {good_idx, good_lut}),
               ErrorCode::kFormat, "sdpal.palettized");
  expect_error(raw("dupkey.safetensors",
                   {{"sdpal.palettized", R"({"unet.w": {"nbits": 4, "shape": [1], "lut_shape": [16]}, "unet.w": {}})"}},
                   {good_idx, good_lut}),
               ErrorCode::kFormat, "duplicate key 'unet.w'");
  expect_error(raw("badconfig.safetensors", {{"sdpal.config.vae", "[1, 2"}}, {}), ErrorCode::kFormat,
               "sdpal.config.vae");
  // Index bytes too short for the shape.
  const TensorToWrite short_idx{"unet.w.indices", DType::U8, {int64_t(idx.size() - 1)}, idx.data(), idx.size() - 1};
  expect_error(raw("short.safetensors", {{"sdpal.palettized", pal}}, {short_idx, good_lut}), ErrorCode::kFormat,
               "'unet.w'");
  expect_error(raw("short2.safetensors", {{"sdpal.palettized", pal}}, {short_idx, good_lut}), ErrorCode::kFormat,
               "index bytes");
  // Table shape not as declared, or not matching nbits.
  const TensorToWrite lut8{"unet.w.lut", DType::F16, {8}, lut.data(), 16};
  expect_error(raw("lutshape.safetensors", {{"sdpal.palettized", pal}}, {good_idx, lut8}), ErrorCode::kFormat,
               "'unet.w.lut' has shape [8]");
  expect_error(raw("lutbits.safetensors",
                   {{"sdpal.palettized", R"({"unet.w": {"nbits": 4, "shape": [32, 4, 3, 3], "lut_shape": [8]}})"}},
                   {good_idx, lut8}),
               ErrorCode::kFormat, "unet.w");
  expect_error(raw("nbits5.safetensors",
                   {{"sdpal.palettized", R"({"unet.w": {"nbits": 5, "shape": [32, 4, 3, 3], "lut_shape": [32]}})"}},
                   {good_idx, good_lut}),
               ErrorCode::kFormat, "unet.w");
  const TensorToWrite f16_idx{"unet.w.indices", DType::F16, {int64_t(idx.size() / 2)}, idx.data(), idx.size() / 2 * 2};
  expect_error(raw("idxtype.safetensors", {{"sdpal.palettized", pal}}, {f16_idx, good_lut}), ErrorCode::kFormat,
               "must be 1-D U8");
  // Missing or dangling parts.
  expect_error(raw("nolut.safetensors", {{"sdpal.palettized", pal}}, {good_idx}), ErrorCode::kFormat,
               "'unet.w.lut' is missing");
  expect_error(raw("dangling.safetensors", {}, {good_idx, good_lut}), ErrorCode::kFormat,
               "looks like a palettized part but has no entry in sdpal.palettized");
  expect_error(raw("dangling2.safetensors", {}, {good_idx}), ErrorCode::kFormat, "'unet.w.indices'");
  // Name collisions.
  const TensorToWrite dense_w{"unet.w", DType::F16, {8}, lut.data(), 16};
  expect_error(raw("collide.safetensors", {{"sdpal.palettized", pal}}, {good_idx, good_lut, dense_w}),
               ErrorCode::kFormat, "'unet.w' is stored both dense and palettized");
  expect_error(raw("nested.safetensors",
                   {{"sdpal.palettized",
                     R"({"unet.w": {"nbits": 4, "shape": [32, 4, 3, 3], "lut_shape": [16]},
                         "unet.w.lut": {"nbits": 4, "shape": [8], "lut_shape": [16]}})"}},
                   {good_idx, good_lut}),
               ErrorCode::kFormat, "unet.w.lut");
  // Tensors outside a known component, or of a component without config.
  expect_error(raw("nocomp.safetensors", {}, {dense_w, {"clip.x", DType::F16, {8}, lut.data(), 16}}),
               ErrorCode::kFormat, "'clip.x' is not under a known component");
  expect_error(raw("noconfig.safetensors", {}, {{"vae.x", DType::F16, {8}, lut.data(), 16}}), ErrorCode::kFormat,
               "no sdpal.config.vae");
  // A truncated file is the container's error, still naming the file.
  const std::string ok = path("ok.safetensors");
  std::string bytes = testing::read_all(ok);
  const std::string trunc = path("trunc.safetensors");
  testing::overwrite(trunc, bytes.substr(0, bytes.size() - 10));
  std::string msg;
  EXPECT_EQ(code_of([&] { SdpalFile::open(trunc); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find(trunc), std::string::npos) << msg;
  EXPECT_FALSE(looks_like_sdpal_file(trunc + ".missing"));
  EXPECT_FALSE(looks_like_sdpal_file(kTiny + "/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_FALSE(looks_like_sdpal_file(kTiny));
}

// A dense fp32 conversion of the tiny model makes exactly the diffusers folder's image; a
// palettized one loads with packed weights and makes a close one.
TEST_F(SdpalFileTest, ConvertedModelMatchesFolder) {
  const std::string dense = path("tiny-f32.safetensors");
  ConvertOptions o;
  o.dtype = DType::F32;
  const ConvertSummary s = convert_to_sdpal(read_diffusers_source(kTiny, "", true), dense, o);
  EXPECT_EQ(s.palettized, 0u);
  EXPECT_GT(s.tensors, 600u);
  EXPECT_TRUE(is_sdpal_file(dense));
  EXPECT_FALSE(is_sdpal_file(kTiny));

  LoadOptions lo;
  lo.safety_checker = true;
  GenerateParams p;
  p.prompt = "a red circle";
  p.steps = 1;
  p.seed = 1;
  p.safety_checker = false;  // compare the images themselves, never a blacked-out one
  auto folder = load_diffusers_folder(kTiny, lo);
  auto single = load_sdpal_file(dense, lo);
  EXPECT_EQ(single->format, "sdpal");
  ASSERT_NE(single->safety_checker, nullptr);
  EXPECT_EQ(single->weight_files, std::vector<std::string>{dense});
  const GenerateResult a = txt2img(*folder, p);
  const GenerateResult b = txt2img(*single, p);
  ASSERT_EQ(a.images.size(), 1u);
  EXPECT_EQ(a.images[0].pixels, b.images[0].pixels);
  EXPECT_EQ(a.nsfw, b.nsfw);

  // Palettize only the larger weights (keeps the test fast); 8 channels per table.
  const std::string pal = path("tiny-4bit.safetensors");
  o.dtype = DType::F16;
  o.nbits = 4;
  o.group_size = 8;
  o.threshold = 30000;
  size_t events = 0;
  const ConvertSummary ps =
      convert_to_sdpal(read_diffusers_source(kTiny, "", false), pal, o, [&](const ConvertTensorEvent&) { ++events; });
  EXPECT_GT(ps.palettized, 5u);
  EXPECT_EQ(events, ps.tensors);
  auto q = load_sdpal_file(pal, lo);
  EXPECT_EQ(q->safety_checker, nullptr);  // left out by the conversion
  const GenerateResult c = txt2img(*q, p);
  double se = 0;
  for (size_t i = 0; i < c.images[0].pixels.size(); ++i) {
    const double d = double(c.images[0].pixels[i]) - double(a.images[0].pixels[i]);
    se += d * d;
  }
  const double psnr = 10 * std::log10(255.0 * 255.0 / std::max(1e-9, se / double(c.images[0].pixels.size())));
  EXPECT_GT(psnr, 25.0);

  // Loading errors name the file.
  std::string msg;
  EXPECT_EQ(code_of([&] { load_sdpal_file(path("none.safetensors"), lo); }, &msg), ErrorCode::kIo);
  SdpalModelToWrite partial;
  partial.model_index_json = partial.scheduler_json = partial.vocab_json = "{}";
  write_sdpal_file(path("partial.safetensors"), partial);
  EXPECT_EQ(code_of([&] { load_sdpal_file(path("partial.safetensors"), lo); }, &msg), ErrorCode::kModel);
  EXPECT_NE(msg.find("text_encoder"), std::string::npos) << msg;
}

}  // namespace
}  // namespace sdpal
