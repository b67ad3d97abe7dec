#include "model/clip_encoder_layers.h"

#include "kernels/cpu/elementwise.h"

namespace sdpal {

void apply_activation(Activation act, float* x, int64_t n) {
  switch (act) {
    case Activation::QuickGelu: cpu::quick_gelu(x, n); break;
    case Activation::Gelu: cpu::gelu(x, n); break;
    case Activation::Silu: cpu::silu(x, n); break;
  }
}

ClipEncoderLayer::ClipEncoderLayer(WeightBinder& w, const std::string& prefix, int64_t hidden, int64_t intermediate,
                                   int64_t heads, float eps, Activation act)
    : act_(act) {
  ln1_ = LayerNorm::bind(w, prefix + ".layer_norm1", hidden, eps);
  attn_ = MultiHeadAttention(w, prefix + ".self_attn", hidden, hidden, heads, true,
                             AttentionNames{"q_proj", "k_proj", "v_proj", "out_proj"});
  ln2_ = LayerNorm::bind(w, prefix + ".layer_norm2", hidden, eps);
  fc1_.emplace(bind_linear(w, prefix + ".mlp.fc1", hidden, intermediate, true));
  fc2_.emplace(bind_linear(w, prefix + ".mlp.fc2", intermediate, hidden, true));
}

Tensor ClipEncoderLayer::forward(const Tensor& x, bool causal) const {
  Tensor h = attn_.forward(ln1_.run(x), nullptr, &x, causal);
  Tensor m = apply_linear(*fc1_, ln2_.run(h));
  apply_activation(act_, m.f32(), m.numel());
  return apply_linear(*fc2_, m, &h);
}

ClipEncoder::ClipEncoder(WeightBinder& w, const std::string& prefix, int64_t layers, int64_t hidden,
                         int64_t intermediate, int64_t heads, float eps, Activation act) {
  for (int64_t i = 0; i < layers; ++i)
    layers_.emplace_back(w, prefix + ".layers." + std::to_string(i), hidden, intermediate, heads, eps, act);
}

Tensor ClipEncoder::forward(Tensor x, bool causal, int num_layers) const {
  int n = num_layers < 0 ? size() : std::min(num_layers, size());
  for (int i = 0; i < n; ++i) x = layers_[i].forward(x, causal);
  return x;
}

}  // namespace sdpal
