// Core ML programs bound to the native modules: Apple's mangled constant names mapped onto the
// diffusers names the modules ask for (model/coreml_weights.h), on the real SD 2.1-base programs with
// synthetic weight files. Palettized weights reach the kernels packed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/synthetic_weights.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/linear.h"
#include "model/clip_text_encoder.h"
#include "model/coreml_configs.h"
#include "model/unet.h"
#include "model/vae.h"
#include "model/coreml_weights.h"
#include "model/model_config.h"
#include "model/weight_binder.h"

namespace sdpal {
namespace {

namespace fs = std::filesystem;
const std::string kFixtures = std::string(SDPAL_SOURCE_DIR) + "/../shared/fixtures/coreml/sd21-base-palettized/";

std::string scratch_root() { return ::testing::TempDir() + "/sdpal_coreml_native_" + std::to_string(::getpid()); }
struct ScratchCleanup : ::testing::Environment {
  void TearDown() override { fs::remove_all(scratch_root()); }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

TEST(CoreMLNames, MangleAndStrip) {
  EXPECT_EQ(coreml_mangle("down_blocks.0.resnets.0.conv1.weight"), "down_blocks_0_resnets_0_conv1_weight");
  EXPECT_EQ(coreml_base_name("down_blocks_0_resnets_0_conv1_weight_to_fp16_palettized"),
            "down_blocks_0_resnets_0_conv1_weight");
  EXPECT_EQ(coreml_base_name("conv_in_bias_to_fp16"), "conv_in_bias");
  EXPECT_EQ(coreml_base_name("position_embeddings_to_fp16_palettized"), "position_embeddings");
  EXPECT_EQ(coreml_name(CoreMLLayout::kUnet, "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj.weight"),
            "up_blocks_1_attentions_2_transformer_blocks_0_ff_net_0_proj_weight");
  EXPECT_EQ(coreml_name(CoreMLLayout::kTextEncoder, "text_model.encoder.layers.0.self_attn.q_proj.weight"),
            "text_encoder_text_model_encoder_layers_0_self_attn_q_proj_weight");
  EXPECT_EQ(coreml_name(CoreMLLayout::kVaeDecoder, "decoder.mid_block.attentions.0.to_q.weight"),
            "decoder_mid_block_attentions_0_query_weight");
  EXPECT_EQ(coreml_name(CoreMLLayout::kVaeDecoder, "decoder.mid_block.attentions.0.to_out.0.bias"),
            "decoder_mid_block_attentions_0_proj_attn_bias");
}

// Opens `dir` (relative to the fixtures) with a synthetic (all-zero, sparse) weight.bin.
std::shared_ptr<CoreMLWeightFile> open_with_synthetic_weights(const std::string& dir) {
  using namespace coreml;
  const std::string mil = kFixtures + dir + "/model.mil";
  const MilProgram p = read_mil_text_file(mil);
  const auto layouts = plan_blob_layouts(collect_blob_refs(p));
  const std::string model_dir = scratch_root() + "/" + fs::path(dir).filename().string();
  fs::create_directories(model_dir + "/weights");
  write_synthetic_weight_bin(layouts.at(0), model_dir + "/weights/weight.bin");
  return CoreMLWeightFile::open(mil, model_dir);
}

TEST(CoreMLNative, RealProgramsNameTheirWeights) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  for (const char* dir : {"original/compiled/Unet.mlmodelc", "original/compiled/TextEncoder.mlmodelc",
                          "original/compiled/VAEDecoder.mlmodelc", "split_einsum_v2/compiled/Unet.mlmodelc"}) {
    SCOPED_TRACE(dir);
    auto f = open_with_synthetic_weights(dir);
    std::map<std::string, int> anon_kinds;
    for (const std::string& a : f->anonymous()) {
      std::string k = a;
      for (char& c : k)
        if (c >= '0' && c <= '9') c = 'N';
      anon_kinds[k]++;
    }
    std::string kinds;
    for (const auto& [k, n] : anon_kinds) kinds += " " + k + " x" + std::to_string(n) + ";";
    std::printf("[ coreml   ] %s: %zu named (%zu palettized, %zu dense), %zu without a module path:%s\n", dir,
                f->tensors().size(), f->palettized_count(), f->dense_count(), f->anonymous().size(), kinds.c_str());
    EXPECT_GT(f->palettized_count() + f->dense_count(), 0u);
  }
}

TEST(CoreMLNative, UnetLayersBindPackedUnderDiffusersNames) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  auto f = open_with_synthetic_weights("original/compiled/Unet.mlmodelc");
  WeightBinder w("unet", {f});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kUnet));
  const TensorView& conv1 = w.get("down_blocks.0.resnets.0.conv1.weight", {320, 320, 3, 3});
  ASSERT_TRUE(conv1.is_palettized());
  EXPECT_EQ(conv1.palettized->nbits, 6);
  const TensorView& conv1_b = w.get("down_blocks.0.resnets.0.conv1.bias", {320});
  EXPECT_FALSE(conv1_b.is_palettized());
  cpu::Conv2d conv(conv1, &conv1_b, 1, 1);
  EXPECT_EQ(conv.weight_bytes(), size_t(320 * 320 * 9 * 6 / 8 + 64 * 2));  // packed, not 3.7 MB of fp32
  const TensorView& q = w.get_compatible("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", {320, 1024});
  cpu::Linear lin(q, nullptr);
  EXPECT_EQ(lin.weight_bytes(), size_t(320 * 1024 * 6 / 8 + 64 * 2));
  Tensor x = Tensor::zeros({1, 4, 4, 320});
  Tensor y = conv.run(x);  // synthetic zeros: y == bias == 0
  EXPECT_EQ(y.f32()[0], 0.f);
  // Unnamed in Core ML (a batch_norm after the group statistics), found through the graph.
  const TensorView& norm1 = w.get("down_blocks.0.resnets.0.norm1.weight", {320});
  EXPECT_EQ(norm1.dtype, DType::F32);
  EXPECT_EQ(f->norm_groups(), 32);
}

// The UNet (both attention implementations) and the VAE decoder bind completely: every parameter
// of the native modules is found (norms through the graph), every constant is used, and the
// config read off the program is SD 2.1-base's.
TEST(CoreMLNative, UnetBindsCompletely) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  for (const char* dir : {"original/compiled/Unet.mlmodelc", "split_einsum_v2/compiled/Unet.mlmodelc"}) {
    SCOPED_TRACE(dir);
    auto f = open_with_synthetic_weights(dir);
    const coreml::MilProgram prog = coreml::read_mil_text_file(kFixtures + dir + "/model.mil");
    const UNetConfig cfg = unet_config_from_coreml(*f, prog.main());
    EXPECT_EQ(cfg.block_out_channels, (std::vector<int>{320, 640, 1280, 1280}));
    EXPECT_EQ(cfg.num_heads, (std::vector<int>{5, 10, 20, 20}));
    EXPECT_EQ(cfg.down_block_types,
              (std::vector<std::string>{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}));
    EXPECT_EQ(cfg.up_block_types,
              (std::vector<std::string>{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}));
    EXPECT_EQ(cfg.layers_per_block, 2);
    EXPECT_EQ(cfg.cross_attention_dim, 1024);
    EXPECT_EQ(cfg.norm_num_groups, 32);
    EXPECT_NEAR(cfg.norm_eps, 1e-5f, 1e-7f);
    EXPECT_EQ(cfg.sample_size, 64);
    WeightBinder w("unet", {f});
    w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kUnet));
    UNet unet(cfg, w);
    EXPECT_NO_THROW(w.finish());
    EXPECT_EQ(w.bound_count(), f->tensors().size());
    std::string left;
    for (const std::string& a : f->anonymous()) left += " " + a;
    std::printf("[ coreml   ] %s: %zu parameters bound (%zu norm parameters from the graph); unused:%s\n", dir,
                w.bound_count(), f->derived_count(), left.empty() ? " none" : left.c_str());
    // resnet norms (4x2 down, 4x3 up, 2 mid; two each), 16 transformer GroupNorms, 16 x 3
    // LayerNorms, conv_norm_out: a weight and a bias each.
    EXPECT_EQ(f->derived_count(), 2u * ((8 + 12 + 2) * 2 + 16 + 16 * 3 + 1));
    // The one constant left is the timestep embedding's frequency table (a buffer the native
    // UNet computes).
    ASSERT_EQ(f->anonymous().size(), 1u);
  }
}

TEST(CoreMLNative, VaeDecoderBindsCompletely) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  auto f = open_with_synthetic_weights("original/compiled/VAEDecoder.mlmodelc");
  const VaeConfig cfg = vae_decoder_config_from_coreml(*f);
  EXPECT_EQ(cfg.block_out_channels, (std::vector<int>{128, 256, 512, 512}));
  EXPECT_EQ(cfg.layers_per_block, 2);
  EXPECT_EQ(cfg.latent_channels, 4);
  EXPECT_EQ(cfg.norm_num_groups, 32);
  WeightBinder w("vae", {f});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kVaeDecoder));
  VaeDecoder vae(cfg, w);
  EXPECT_NO_THROW(w.finish());
  EXPECT_EQ(w.bound_count(), f->tensors().size());
  EXPECT_TRUE(f->anonymous().empty());
}

TEST(CoreMLNative, TextEncoderAndVaeNamesMap) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  auto te = open_with_synthetic_weights("original/compiled/TextEncoder.mlmodelc");
  WeightBinder t("text_encoder", {te});
  t.set_name_mapper(coreml_name_mapper(CoreMLLayout::kTextEncoder));
  EXPECT_TRUE(t.get_compatible("text_model.encoder.layers.22.self_attn.q_proj.weight", {1024, 1024}).is_palettized());
  EXPECT_NO_THROW(t.get("text_model.encoder.layers.0.layer_norm1.weight", {1024}));
  EXPECT_NO_THROW(t.get("text_model.embeddings.token_embedding.weight", {49408, 1024}));
  auto vae = open_with_synthetic_weights("original/compiled/VAEDecoder.mlmodelc");
  WeightBinder v("vae", {vae});
  v.set_name_mapper(coreml_name_mapper(CoreMLLayout::kVaeDecoder));
  EXPECT_NO_THROW(v.get_compatible("decoder.mid_block.attentions.0.to_q.weight", {512, 512}));
  EXPECT_NO_THROW(v.get("decoder.conv_in.weight", {512, 4, 3, 3}));
  EXPECT_NO_THROW(v.get_compatible("post_quant_conv.weight", {4, 4, 1, 1}));
}

// The whole OpenCLIP-H text encoder (SD 2.x: 1024 wide, 23 layers, GELU) binds from the Core ML
// program, config taken from the program's shapes; every named constant is used except the causal
// mask (a buffer the native encoder computes).
TEST(CoreMLNative, TextEncoderBindsCompletely) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  auto te = open_with_synthetic_weights("original/compiled/TextEncoder.mlmodelc");
  const TensorView* tok = te->find("text_encoder_text_model_embeddings_token_embedding_weight");
  const TensorView* fc1 = te->find("text_encoder_text_model_encoder_layers_0_mlp_fc1_weight");
  ASSERT_TRUE(tok && fc1);
  ClipTextConfig cfg;
  cfg.vocab_size = int(tok->shape[0]);
  cfg.hidden_size = int(tok->shape[1]);
  cfg.intermediate_size = int(fc1->shape[0]);
  cfg.num_layers = 0;
  while (te->find("text_encoder_text_model_encoder_layers_" + std::to_string(cfg.num_layers) + "_layer_norm1_weight"))
    ++cfg.num_layers;
  cfg.num_heads = cfg.hidden_size / 64;
  cfg.act = Activation::Gelu;
  EXPECT_EQ(cfg.hidden_size, 1024);
  EXPECT_EQ(cfg.num_layers, 23);
  WeightBinder w("text_encoder", {te});
  w.set_name_mapper(coreml_name_mapper(CoreMLLayout::kTextEncoder));
  w.allow_unused_prefix("causal_attention_mask");
  ClipTextEncoder enc(cfg, w);
  EXPECT_NO_THROW(w.finish());
  std::printf("[ coreml   ] TextEncoder: %zu of %zu named constants bound (+ causal_attention_mask unused)\n",
              w.bound_count(), te->tensors().size());
  EXPECT_EQ(w.bound_count() + 1, te->tensors().size());
  EXPECT_TRUE(te->anonymous().empty());
}

}  // namespace
}  // namespace sdpal
