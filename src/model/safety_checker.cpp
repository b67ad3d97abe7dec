#include "model/safety_checker.h"

#include <cmath>

namespace sdpal {
namespace {

// Rows of x [n, d] divided by their L2 norm (at least 1e-12), as F.normalize does in float32.
Tensor normalize_rows(const Tensor& x) {
  int64_t n = x.dim(0), d = x.dim(1);
  Tensor out = Tensor::empty(x.shape());
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x.f32() + i * d;
    float s = 0.f;
    for (int64_t k = 0; k < d; ++k) s += r[k] * r[k];
    float norm = std::max(std::sqrt(s), 1e-12f);
    for (int64_t k = 0; k < d; ++k) out.f32()[i * d + k] = r[k] / norm;
  }
  return out;
}

// Dot products of the rows of two row-normalized matrices: [n, d] x [m, d] -> n*m cosines.
std::vector<float> cosine(const Tensor& a_normalized, const Tensor& b_normalized) {
  int64_t n = a_normalized.dim(0), m = b_normalized.dim(0), d = a_normalized.dim(1);
  std::vector<float> result(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      const float* a = a_normalized.f32() + i * d;
      const float* b = b_normalized.f32() + j * d;
      float dot = 0.f;
      for (int64_t k = 0; k < d; ++k) dot += a[k] * b[k];
      result[size_t(i * m + j)] = dot;
    }
  return result;
}

// Python's round(np.float64(x), 3): x * 1000 rounded half to even, divided by 1000.
double round3(double x) { return std::nearbyint(x * 1000.0) / 1000.0; }

}  // namespace

SafetyChecker::SafetyChecker(const ClipVisionConfig& cfg, WeightBinder& w) : cfg_(cfg) {
  vision_ = std::make_unique<ClipVisionEncoder>(cfg, w, "vision_model.vision_model");
  projection_.emplace(bind_linear(w, "visual_projection", cfg.hidden_size, cfg.projection_dim, false));
  // The concept directions are fixed: normalize them once, not per checked image.
  concept_embeds_ = normalize_rows(w.get_f32("concept_embeds", {17, cfg.projection_dim}));
  special_embeds_ = normalize_rows(w.get_f32("special_care_embeds", {3, cfg.projection_dim}));
  concept_weights_ = w.get_f32("concept_embeds_weights", {17});
  special_weights_ = w.get_f32("special_care_embeds_weights", {3});
}

Tensor SafetyChecker::image_embeds(const Tensor& pixels) const {
  return apply_linear(*projection_, vision_->pooled(pixels));
}

std::vector<SafetyResult> SafetyChecker::check(const Tensor& pixels) const {
  Tensor emb = normalize_rows(image_embeds(pixels));
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
