// Architecture hyper-parameters read from each component's config.json (diffusers/transformers
// names and defaults), so a tiny test model and full-size SD v1.4 load through the same code.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sdpal {

enum class Activation { QuickGelu, Gelu, Silu };

struct ClipTextConfig {
  int vocab_size = 49408, hidden_size = 512, intermediate_size = 2048, num_layers = 12, num_heads = 8;
  int max_positions = 77;
  float layer_norm_eps = 1e-5f;
  Activation act = Activation::QuickGelu;
};

struct ClipVisionConfig {
  int hidden_size = 768, intermediate_size = 3072, num_layers = 12, num_heads = 12;
  int image_size = 224, patch_size = 32, num_channels = 3;
  float layer_norm_eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  int projection_dim = 512;  // CLIPConfig default
};

struct UNetConfig {
  int in_channels = 4, out_channels = 4, sample_size = 64;
  std::vector<int> block_out_channels{320, 640, 1280, 1280};
  std::vector<std::string> down_block_types, up_block_types;
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  int layers_per_block = 2;
  std::vector<int> num_heads;  // per down block (diffusers' attention_head_dim quirk resolved)
  int cross_attention_dim = 768;
  int norm_num_groups = 32;
  float norm_eps = 1e-5f;
  bool use_linear_projection = false;
  int transformer_layers_per_block = 1;
  bool flip_sin_to_cos = true;
  float freq_shift = 0.f;
  bool upcast_attention = false;
};

struct VaeConfig {
  int in_channels = 3, out_channels = 3, latent_channels = 4, sample_size = 512;
  std::vector<int> block_out_channels{128, 256, 512, 512};
  int layers_per_block = 2, norm_num_groups = 32;
  float scaling_factor = 0.18215f;
  bool mid_block_add_attention = true;
  int scale_factor() const { return 1 << (int(block_out_channels.size()) - 1); }
};

ClipTextConfig parse_clip_text_config(const nlohmann::json& j, const std::string& path);
ClipVisionConfig parse_clip_vision_config(const nlohmann::json& j, const std::string& path);
UNetConfig parse_unet_config(const nlohmann::json& j, const std::string& path);
VaeConfig parse_vae_config(const nlohmann::json& j, const std::string& path);

// Reads and parses a JSON file; errors name the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace sdpal
