#include "model/coreml_configs.h"

#include <string>

#include "core/error.h"
#include "io/coreml/mil_ast.h"

namespace sdpal {

namespace {

using coreml::MilFunction;
using coreml::MilOp;

// One model's weights, possibly spread over several programs (chunks).
struct Parts {
  std::vector<const CoreMLWeightFile*> files;
  std::vector<const MilFunction*> mains;
  const TensorView* find(const std::string& name) const {
    for (const CoreMLWeightFile* f : files)
      if (const TensorView* v = f->find(name)) return v;
    return nullptr;
  }
  const std::string& path() const { return files.front()->path(); }
  int norm_groups() const {
    for (const CoreMLWeightFile* f : files)
      if (f->norm_groups() > 0) return f->norm_groups();
    return 0;
  }
  float norm_eps() const {
    for (const CoreMLWeightFile* f : files)
      if (f->norm_groups() > 0) return f->norm_eps();
    return 0.f;
  }
};

template <class W>
const TensorView& need(const W& w, const std::string& name) {
  const TensorView* v = w.find(name);
  if (!v) fail(ErrorCode::kModel, w.path() + ": no weight '" + name + "' (is this the right Core ML model?)");
  return *v;
}

template <class W>
int count_prefixed(const W& w, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (w.find(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

bool has_op(const MilFunction& f, const std::string& type) {
  for (const MilOp& op : f.block.ops)
    if (op.type == type) return true;
  return false;
}

}  // namespace

int coreml_attention_heads(const MilFunction& f, const std::string& q_weight, int64_t channels) {
  std::string q_out;
  for (const MilOp& op : f.block.ops) {
    if (op.type != "conv" && op.type != "linear" && op.type != "matmul") continue;
    const coreml::MilArgument* a = op.input(op.type == "matmul" ? "y" : "weight");
    if (a && a->bindings.size() == 1 && coreml_base_name(a->bindings[0].name) == q_weight && !op.outputs.empty()) {
      q_out = op.outputs[0].name;
      break;
    }
  }
  if (q_out.empty()) return 0;
  // Follow through a scale multiply (CLIP scales the query before splitting heads).
  for (int hop = 0; hop < 3; ++hop) {
    std::string next;
    for (const MilOp& op : f.block.ops) {
      const coreml::MilArgument* x = op.input("x");
      if (!x || x->bindings.size() != 1 || x->bindings[0].name != q_out || op.outputs.empty()) continue;
      const Shape& s = op.outputs[0].type.shape;
      if (op.type == "reshape" && s.size() == 4) {
        if (s[1] * s[2] == channels) return int(s[1]);
        if (s[2] * s[3] == channels) return int(s[2]);
      }
      if (op.type == "slice_by_index" && s.size() == 4 && s[1] > 0 && s[1] < channels && channels % s[1] == 0)
        return int(channels / s[1]);
      if (op.type == "split" && op.outputs.size() > 1) return int(op.outputs.size());
      if (op.type == "mul" || op.type == "cast") next = op.outputs[0].name;
    }
    if (next.empty()) return 0;
    q_out = next;
  }
  return 0;
}

ClipTextConfig clip_text_config_from_coreml(const CoreMLWeightFile& w, const MilFunction& main) {
  ClipTextConfig cfg;
  const std::string p = "text_encoder_text_model_";
  const TensorView& tok = need(w, p + "embeddings_token_embedding_weight");
  const TensorView& fc1 = need(w, p + "encoder_layers_0_mlp_fc1_weight");
  cfg.vocab_size = int(tok.shape[0]);
  cfg.hidden_size = int(tok.shape[1]);
  cfg.intermediate_size = int(fc1.shape[0]);
  cfg.num_layers = count_prefixed(w, p + "encoder_layers_", "_layer_norm1_weight");
  if (const TensorView* pos = w.find("position_embeddings")) cfg.max_positions = int(pos->shape[0]);
  int heads = coreml_attention_heads(main, p + "encoder_layers_0_self_attn_q_proj_weight", cfg.hidden_size);
  cfg.num_heads = heads > 0 ? heads : cfg.hidden_size / 64;
  // OpenCLIP (SD 2.x) uses GELU; OpenAI CLIP (SD 1.x) quick_gelu, which converts to x * sigmoid(1.702 x).
  cfg.act = has_op(main, "gelu") ? Activation::Gelu : Activation::QuickGelu;
  return cfg;
}

UNetConfig unet_config_from_coreml(const CoreMLWeightFile& w, const MilFunction& main) {
  return unet_config_from_coreml(std::vector<const CoreMLWeightFile*>{&w}, std::vector<const MilFunction*>{&main});
}

UNetConfig unet_config_from_coreml(const std::vector<const CoreMLWeightFile*>& chunks,
                                   const std::vector<const MilFunction*>& mains) {
  check(!chunks.empty() && chunks.size() == mains.size(), ErrorCode::kInvalidArgument, "unet_config_from_coreml: no programs");
  const Parts w{chunks, mains};
  auto heads_of = [&](const std::string& q, int64_t ch) {
    for (const MilFunction* m : mains)
      if (int h = coreml_attention_heads(*m, q, ch)) return h;
    return 0;
  };
  UNetConfig cfg;
  const TensorView& conv_in = need(w, "conv_in_weight");
  cfg.in_channels = int(conv_in.shape[1]);
  cfg.out_channels = int(need(w, "conv_out_weight").shape[0]);
  for (const auto& in : mains.front()->inputs)
    if (in.name == "sample" && in.type.shape.size() == 4) cfg.sample_size = int(in.type.shape[2]);
  cfg.block_out_channels.clear();
  cfg.down_block_types.clear();
  cfg.up_block_types.clear();
  cfg.num_heads.clear();
  const int blocks = count_prefixed(w, "down_blocks_", "_resnets_0_conv1_weight");
  if (blocks == 0) need(w, "down_blocks_0_resnets_0_conv1_weight");
  cfg.layers_per_block = count_prefixed(w, "down_blocks_0_resnets_", "_conv1_weight");
  for (int i = 0; i < blocks; ++i) {
    const std::string d = "down_blocks_" + std::to_string(i) + "_";
    const int64_t ch = need(w, d + "resnets_0_conv1_weight").shape[0];
    cfg.block_out_channels.push_back(int(ch));
    const bool attn = w.find(d + "attentions_0_proj_in_weight") != nullptr;
    cfg.down_block_types.push_back(attn ? "CrossAttnDownBlock2D" : "DownBlock2D");
    int heads = 0;
    if (attn) {
      const std::string q = d + "attentions_0_transformer_blocks_0_attn1_to_q_weight";
      heads = heads_of(q, ch);
      if (heads == 0) fail(ErrorCode::kModel, w.path() + ": cannot tell the attention heads of '" + q + "'");
      cfg.cross_attention_dim = int(need(w, d + "attentions_0_transformer_blocks_0_attn2_to_k_weight").shape[1]);
      cfg.use_linear_projection = need(w, d + "attentions_0_proj_in_weight").shape.size() == 2;
      cfg.transformer_layers_per_block = count_prefixed(w, d + "attentions_0_transformer_blocks_", "_attn1_to_q_weight");
    }
    cfg.num_heads.push_back(heads);
  }
  // Blocks without attention take the next block's head count (unused; keeps the vector full).
  for (int i = blocks - 2; i >= 0; --i)
    if (cfg.num_heads[size_t(i)] == 0) cfg.num_heads[size_t(i)] = cfg.num_heads[size_t(i) + 1];
  for (int i = 0; i < blocks; ++i) {
    const bool attn = w.find("up_blocks_" + std::to_string(i) + "_attentions_0_proj_in_weight") != nullptr;
    cfg.up_block_types.push_back(attn ? "CrossAttnUpBlock2D" : "UpBlock2D");
  }
  if (!w.find("mid_block_attentions_0_proj_in_weight")) cfg.mid_block_type = "UNetMidBlock2D";
  if (cfg.num_heads.back() == 0) {
    const int64_t ch = cfg.block_out_channels.back();
    cfg.num_heads.back() = heads_of("mid_block_attentions_0_transformer_blocks_0_attn1_to_q_weight", ch);
  }
  if (w.norm_groups() > 0) cfg.norm_num_groups = w.norm_groups();
  if (w.norm_eps() > 0) cfg.norm_eps = w.norm_eps();
  return cfg;
}

VaeConfig vae_decoder_config_from_coreml(const CoreMLWeightFile& w) {
  VaeConfig cfg;
  cfg.latent_channels = int(need(w, "decoder_conv_in_weight").shape[1]);
  cfg.out_channels = int(need(w, "decoder_conv_out_weight").shape[0]);
  const int blocks = count_prefixed(w, "decoder_up_blocks_", "_resnets_0_conv1_weight");
  if (blocks == 0) need(w, "decoder_up_blocks_0_resnets_0_conv1_weight");
  cfg.block_out_channels.assign(size_t(blocks), 0);
  for (int i = 0; i < blocks; ++i)  // up block i has the channels of down block (blocks - 1 - i)
    cfg.block_out_channels[size_t(blocks - 1 - i)] =
        int(need(w, "decoder_up_blocks_" + std::to_string(i) + "_resnets_0_conv2_weight").shape[0]);
  cfg.layers_per_block = count_prefixed(w, "decoder_up_blocks_0_resnets_", "_conv1_weight") - 1;
  cfg.mid_block_add_attention = w.find("decoder_mid_block_attentions_0_query_weight") ||
                                w.find("decoder_mid_block_attentions_0_to_q_weight");
  if (w.norm_groups() > 0) cfg.norm_num_groups = w.norm_groups();
  return cfg;
}

}  // namespace sdpal
