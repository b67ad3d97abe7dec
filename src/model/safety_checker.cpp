#include "model/safety_checker.h"

#include <cmath>

namespace sdpal {
namespace {

// Cosine similarities between rows of a [n, d] and rows of b [m, d], as F.normalize + mm in float32.
std::vector<float> cosine(const Tensor& a, const Tensor& b) {
  int64_t n = a.dim(0), m = b.dim(0), d = a.dim(1);
  auto normalized = [d](const float* x, std::vector<float>& out) {
    float s = 0.f;
    for (int64_t k = 0; k < d; ++k) s += x[k] * x[k];
    float norm = std::max(std::sqrt(s), 1e-12f);
    out.resize(size_t(d));
    for (int64_t k = 0; k < d; ++k) out[size_t(k)] = x[k] / norm;
  };
  std::vector<float> result(size_t(n * m)), an, bn;
  for (int64_t i = 0; i < n; ++i) {
    normalized(a.f32() + i * d, an);
    for (int64_t j = 0; j < m; ++j) {
      normalized(b.f32() + j * d, bn);
      float dot = 0.f;
      for (int64_t k = 0; k < d; ++k) dot += an[size_t(k)] * bn[size_t(k)];
      result[size_t(i * m + j)] = dot;
    }
  }
  return result;
}

// Python's round(np.float64(x), 3): x * 1000 rounded half to even, divided by 1000.
double round3(double x) { return std::nearbyint(x * 1000.0) / 1000.0; }

}  // namespace

SafetyChecker::SafetyChecker(const ClipVisionConfig& cfg, WeightBinder& w) : cfg_(cfg) {
  vision_ = std::make_unique<ClipVisionEncoder>(cfg, w, "vision_model.vision_model");
  projection_.emplace(bind_linear(w, "visual_projection", cfg.hidden_size, cfg.projection_dim, false));
  concept_embeds_ = w.get_f32("concept_embeds", {17, cfg.projection_dim});
  special_embeds_ = w.get_f32("special_care_embeds", {3, cfg.projection_dim});
  concept_weights_ = w.get_f32("concept_embeds_weights", {17});
  special_weights_ = w.get_f32("special_care_embeds_weights", {3});
}

Tensor SafetyChecker::image_embeds(const Tensor& pixels) const {
  return apply_linear(*projection_, vision_->pooled(pixels));
}

std::vector<SafetyResult> SafetyChecker::check(const Tensor& pixels) const {
  Tensor emb = image_embeds(pixels);
  int64_t n = emb.dim(0);
  std::vector<float> special = cosine(emb, special_embeds_);
  std::vector<float> concept_cos = cosine(emb, concept_embeds_);
  std::vector<SafetyResult> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    SafetyResult& r = out[size_t(i)];
    double adjustment = 0.0;
    for (int64_t k = 0; k < 3; ++k) {
      double s = round3(double(special[size_t(i * 3 + k)]) - double(special_weights_.f32()[k]) + adjustment);
      r.special_scores.push_back(s);
      if (s > 0) adjustment = 0.01;
    }
    for (int64_t k = 0; k < 17; ++k) {
      double s = round3(double(concept_cos[size_t(i * 17 + k)]) - double(concept_weights_.f32()[k]) + adjustment);
      r.concept_scores.push_back(s);
      if (s > 0) r.nsfw = true;
    }
  }
  return out;
}

}  // namespace sdpal
