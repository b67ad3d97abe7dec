#include "model/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace sdpal {
namespace {

using nlohmann::json;

template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const std::exception&) {
    fail(ErrorCode::kFormat, path + ": key '" + key + "' has the wrong type");
  }
}

void require_positive(int v, const char* key, const std::string& path, int max = 1 << 20) {
  check(v > 0 && v <= max, ErrorCode::kFormat, path + ": '" + key + "' = " + std::to_string(v) + " is out of range");
}

Activation parse_act(const std::string& s, const std::string& path) {
  if (s == "quick_gelu") return Activation::QuickGelu;
  if (s == "gelu") return Activation::Gelu;
  if (s == "silu" || s == "swish") return Activation::Silu;
  fail(ErrorCode::kUnsupported, path + ": unsupported hidden_act '" + s + "'");
}

}  // namespace

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, "cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
    return j;
  } catch (const json::parse_error& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON (" + e.what() + ")");
  }
}

ClipTextConfig parse_clip_text_config(const json& j, const std::string& path) {
  ClipTextConfig c;
  c.vocab_size = get_or(j, "vocab_size", c.vocab_size, path);
  c.hidden_size = get_or(j, "hidden_size", c.hidden_size, path);
  c.intermediate_size = get_or(j, "intermediate_size", c.intermediate_size, path);
  c.num_layers = get_or(j, "num_hidden_layers", c.num_layers, path);
  c.num_heads = get_or(j, "num_attention_heads", c.num_heads, path);
  c.max_positions = get_or(j, "max_position_embeddings", c.max_positions, path);
  c.layer_norm_eps = get_or(j, "layer_norm_eps", double(c.layer_norm_eps), path);
  c.act = parse_act(get_or<std::string>(j, "hidden_act", "quick_gelu", path), path);
  require_positive(c.vocab_size, "vocab_size", path, 1 << 24);
  require_positive(c.hidden_size, "hidden_size", path);
  require_positive(c.intermediate_size, "intermediate_size", path);
  require_positive(c.num_layers, "num_hidden_layers", path, 1000);
  require_positive(c.num_heads, "num_attention_heads", path, 1000);
  require_positive(c.max_positions, "max_position_embeddings", path, 1 << 16);
  check(c.hidden_size % c.num_heads == 0, ErrorCode::kFormat, path + ": hidden_size not divisible by heads");
  return c;
}

ClipVisionConfig parse_clip_vision_config(const json& j, const std::string& path) {
  // Safety checker configs nest the vision config under "vision_config".
  const json& v = j.contains("vision_config") && j["vision_config"].is_object() ? j["vision_config"] : j;
  ClipVisionConfig c;
  c.hidden_size = get_or(v, "hidden_size", c.hidden_size, path);
  c.intermediate_size = get_or(v, "intermediate_size", c.intermediate_size, path);
  c.num_layers = get_or(v, "num_hidden_layers", c.num_layers, path);
  c.num_heads = get_or(v, "num_attention_heads", c.num_heads, path);
  c.image_size = get_or(v, "image_size", c.image_size, path);
  c.patch_size = get_or(v, "patch_size", c.patch_size, path);
  c.num_channels = get_or(v, "num_channels", c.num_channels, path);
  c.layer_norm_eps = get_or(v, "layer_norm_eps", double(c.layer_norm_eps), path);
  c.act = parse_act(get_or<std::string>(v, "hidden_act", "quick_gelu", path), path);
  c.projection_dim = get_or(j, "projection_dim", get_or(v, "projection_dim", c.projection_dim, path), path);
  require_positive(c.hidden_size, "hidden_size", path);
  require_positive(c.num_heads, "num_attention_heads", path, 1000);
  require_positive(c.num_layers, "num_hidden_layers", path, 1000);
  require_positive(c.patch_size, "patch_size", path, 4096);
  require_positive(c.image_size, "image_size", path, 1 << 14);
  require_positive(c.projection_dim, "projection_dim", path);
  check(c.hidden_size % c.num_heads == 0, ErrorCode::kFormat, path + ": hidden_size not divisible by heads");
  check(c.image_size % c.patch_size == 0, ErrorCode::kFormat, path + ": image_size not divisible by patch_size");
  return c;
}

UNetConfig parse_unet_config(const json& j, const std::string& path) {
  UNetConfig c;
  c.in_channels = get_or(j, "in_channels", c.in_channels, path);
  c.out_channels = get_or(j, "out_channels", c.out_channels, path);
  c.sample_size = get_or(j, "sample_size", c.sample_size, path);
  c.block_out_channels = get_or(j, "block_out_channels", c.block_out_channels, path);
  size_t nb = c.block_out_channels.size();
  check(nb >= 1 && nb <= 8, ErrorCode::kFormat, path + ": block_out_channels must have 1..8 entries");
  std::vector<std::string> def_down, def_up;
  for (size_t i = 0; i < nb; ++i) {
    def_down.push_back(i + 1 < nb ? "CrossAttnDownBlock2D" : "DownBlock2D");
    def_up.push_back(i == 0 ? "UpBlock2D" : "CrossAttnUpBlock2D");
  }
  c.down_block_types = get_or(j, "down_block_types", def_down, path);
  c.up_block_types = get_or(j, "up_block_types", def_up, path);
  c.mid_block_type = get_or<std::string>(j, "mid_block_type", c.mid_block_type, path);
  check(c.down_block_types.size() == nb && c.up_block_types.size() == nb, ErrorCode::kFormat,
        path + ": down/up block types do not match block_out_channels");
  for (const auto& t : c.down_block_types)
    check(t == "CrossAttnDownBlock2D" || t == "DownBlock2D", ErrorCode::kUnsupported, path + ": unsupported block " + t);
  for (const auto& t : c.up_block_types)
    check(t == "CrossAttnUpBlock2D" || t == "UpBlock2D", ErrorCode::kUnsupported, path + ": unsupported block " + t);
  check(c.mid_block_type == "UNetMidBlock2DCrossAttn", ErrorCode::kUnsupported,
        path + ": unsupported mid_block_type " + c.mid_block_type);
  c.layers_per_block = get_or(j, "layers_per_block", c.layers_per_block, path);
  c.cross_attention_dim = get_or(j, "cross_attention_dim", c.cross_attention_dim, path);
  c.norm_num_groups = get_or(j, "norm_num_groups", c.norm_num_groups, path);
  c.norm_eps = get_or(j, "norm_eps", double(c.norm_eps), path);
  c.use_linear_projection = get_or(j, "use_linear_projection", c.use_linear_projection, path);
  c.flip_sin_to_cos = get_or(j, "flip_sin_to_cos", c.flip_sin_to_cos, path);
  c.freq_shift = get_or(j, "freq_shift", double(c.freq_shift), path);
  c.upcast_attention = get_or(j, "upcast_attention", c.upcast_attention, path);
  if (j.contains("transformer_layers_per_block") && j["transformer_layers_per_block"].is_number_integer())
    c.transformer_layers_per_block = j["transformer_layers_per_block"].get<int>();
  check(c.transformer_layers_per_block == 1, ErrorCode::kUnsupported,
        path + ": transformer_layers_per_block other than 1 is not supported");
  // diffusers quirk: for SD 1.x/2.x configs "attention_head_dim" holds the number of heads
  // (num_attention_heads = num_attention_heads or attention_head_dim).
  const char* heads_key = j.contains("num_attention_heads") && !j["num_attention_heads"].is_null()
                              ? "num_attention_heads" : "attention_head_dim";
  std::vector<int> heads;
  if (j.contains(heads_key) && j[heads_key].is_array()) {
    heads = get_or(j, heads_key, heads, path);
  } else {
    heads.assign(nb, get_or(j, heads_key, 8, path));
  }
  check(heads.size() == nb, ErrorCode::kFormat, path + ": " + heads_key + " must have one entry per block");
  c.num_heads = heads;
  require_positive(c.layers_per_block, "layers_per_block", path, 64);
  require_positive(c.norm_num_groups, "norm_num_groups", path, 4096);
  require_positive(c.cross_attention_dim, "cross_attention_dim", path);
  require_positive(c.in_channels, "in_channels", path, 64);
  require_positive(c.out_channels, "out_channels", path, 64);
  for (size_t i = 0; i < nb; ++i) {
    int ch = c.block_out_channels[i];
    require_positive(ch, "block_out_channels", path, 1 << 16);
    require_positive(heads[i], heads_key, path, 4096);
    check(ch % c.norm_num_groups == 0, ErrorCode::kFormat, path + ": channels not divisible by norm_num_groups");
    check(ch % heads[i] == 0, ErrorCode::kFormat, path + ": channels not divisible by the number of heads");
  }
  return c;
}

VaeConfig parse_vae_config(const json& j, const std::string& path) {
  VaeConfig c;
  c.in_channels = get_or(j, "in_channels", c.in_channels, path);
  c.out_channels = get_or(j, "out_channels", c.out_channels, path);
  c.latent_channels = get_or(j, "latent_channels", c.latent_channels, path);
  c.sample_size = get_or(j, "sample_size", c.sample_size, path);
  c.block_out_channels = get_or(j, "block_out_channels", c.block_out_channels, path);
  c.layers_per_block = get_or(j, "layers_per_block", c.layers_per_block, path);
  c.norm_num_groups = get_or(j, "norm_num_groups", c.norm_num_groups, path);
  c.scaling_factor = get_or(j, "scaling_factor", double(c.scaling_factor), path);
  c.mid_block_add_attention = get_or(j, "mid_block_add_attention", c.mid_block_add_attention, path);
  check(!c.block_out_channels.empty() && c.block_out_channels.size() <= 8, ErrorCode::kFormat,
        path + ": block_out_channels must have 1..8 entries");
  for (int ch : c.block_out_channels) {
    require_positive(ch, "block_out_channels", path, 1 << 16);
    check(ch % c.norm_num_groups == 0, ErrorCode::kFormat, path + ": channels not divisible by norm_num_groups");
  }
  require_positive(c.layers_per_block, "layers_per_block", path, 64);
  require_positive(c.latent_channels, "latent_channels", path, 64);
  require_positive(c.out_channels, "out_channels", path, 64);
  check(c.scaling_factor > 0.f && std::isfinite(c.scaling_factor), ErrorCode::kFormat, path + ": bad scaling_factor");
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (!j.contains(key)) continue;
    for (const auto& t : j[key]) {
      std::string s = t.is_string() ? t.get<std::string>() : "";
      check(s == "DownEncoderBlock2D" || s == "UpDecoderBlock2D", ErrorCode::kUnsupported,
            path + ": unsupported VAE block " + s);
    }
  }
  return c;
}

}  // namespace sdpal
