#include "model/coreml_mil_networks.h"

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "model/coreml_weights.h"

namespace sdpal {

namespace {

const coreml::MilNamedType& input_named(const coreml::CoreMLModel& m, const std::string& name) {
  for (const auto& in : m.program.main().inputs)
    if (in.name == name) return in;
  fail(ErrorCode::kModel, m.location + ": the program has no input '" + name + "'");
}

Shape static_shape(const coreml::CoreMLModel& m, const std::string& input) {
  const coreml::MilNamedType& t = input_named(m, input);
  if (!t.type.has_static_shape())
    fail(ErrorCode::kUnsupported, m.location + ": input '" + input + "' has a flexible shape (" + t.type.str() + ")");
  return t.type.shape;
}

Tensor take(std::map<std::string, Tensor>& outs, const coreml::CoreMLModel& m, const std::string& name) {
  auto it = outs.find(name);
  if (it == outs.end()) fail(ErrorCode::kModel, m.location + ": the program has no output '" + name + "'");
  return std::move(it->second);
}

// NHWC rows [n0, n0 + count) of x as an NCHW batch of `batch` rows (the last row repeated to fill).
Tensor nchw_chunk(const Tensor& x, int64_t n0, int64_t count, int64_t batch) {
  const int64_t h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor out = Tensor::empty({batch, c, h, w});
  for (int64_t b = 0; b < batch; ++b) {
    const float* src = x.f32() + std::min(n0 + b, n0 + count - 1) * h * w * c;
    float* dst = out.f32() + b * c * h * w;
    for (int64_t i = 0; i < h * w; ++i)
      for (int64_t ch = 0; ch < c; ++ch) dst[ch * h * w + i] = src[i * c + ch];
  }
  return out;
}

// NCHW rows [0, count) of y into NHWC rows [n0, n0 + count) of out.
void put_nhwc(const Tensor& y, int64_t count, Tensor& out, int64_t n0) {
  const int64_t c = y.dim(1), h = y.dim(2), w = y.dim(3);
  for (int64_t b = 0; b < count; ++b) {
    const float* src = y.f32() + b * c * h * w;
    float* dst = out.f32() + (n0 + b) * h * w * c;
    for (int64_t i = 0; i < h * w; ++i)
      for (int64_t ch = 0; ch < c; ++ch) dst[i * c + ch] = src[ch * h * w + i];
  }
}

}  // namespace

MilTextEncoder::MilTextEncoder(std::shared_ptr<const coreml::CoreMLModel> model, ClipTextConfig cfg,
                               mil::InterpreterOptions opts)
    : model_(std::move(model)), cfg_(cfg), interp_(*model_, opts) {
  const Shape s = static_shape(*model_, "input_ids");
  if (s.size() != 2 || s[0] != 1 || s[1] != cfg_.max_positions)
    fail(ErrorCode::kUnsupported, model_->location + ": expected input_ids of shape [1, " +
                                      std::to_string(cfg_.max_positions) + "], got " + shape_str(s));
}

Tensor MilTextEncoder::forward(const std::vector<int32_t>& ids, int64_t batch) const {
  const int64_t s = cfg_.max_positions, c = cfg_.hidden_size;
  check(int64_t(ids.size()) == batch * s, ErrorCode::kInvalidArgument, "text encoder: expected batch x 77 ids");
  Tensor out = Tensor::empty({batch, s, c});
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t b = 0; b < batch; ++b) {
    Tensor in = Tensor::empty({1, s});
    for (int64_t i = 0; i < s; ++i) in.f32()[i] = float(ids[size_t(b * s + i)]);
    auto outs = interp_.run({{"input_ids", std::move(in)}});
    Tensor h = take(outs, *model_, "last_hidden_state");
    check(h.numel() == s * c, ErrorCode::kModel, model_->location + ": last_hidden_state has shape " + shape_str(h.shape()));
    std::memcpy(out.f32() + b * s * c, h.f32(), size_t(s * c) * sizeof(float));
  }
  return out;
}

MilUNet::MilUNet(std::vector<std::shared_ptr<const coreml::CoreMLModel>> chunks, UNetConfig cfg,
                 mil::InterpreterOptions opts)
    : chunks_(std::move(chunks)), cfg_(std::move(cfg)) {
  check(!chunks_.empty(), ErrorCode::kModel, "no UNet program");
  for (const auto& c : chunks_) interps_.emplace_back(*c, opts);
  sample_shape_ = static_shape(*chunks_.front(), "sample");
  check(sample_shape_.size() == 4, ErrorCode::kModel, chunks_.front()->location + ": sample must be [B, C, h, w]");
}

Tensor MilUNet::forward(const Tensor& sample, float timestep, const Tensor& context) const {
  const int64_t n = sample.dim(0), pb = sample_shape_[0];
  if (sample.dim(1) != sample_shape_[2] || sample.dim(2) != sample_shape_[3] || sample.dim(3) != sample_shape_[1])
    fail(ErrorCode::kInvalidArgument,
         chunks_.front()->location + " was converted for " + std::to_string(sample_shape_[2]) + "x" +
             std::to_string(sample_shape_[3]) + " latents (" + std::to_string(sample_shape_[2] * 8) + "x" +
             std::to_string(sample_shape_[3] * 8) + " images); got " + std::to_string(sample.dim(1)) + "x" +
             std::to_string(sample.dim(2)));
  const int64_t s = context.dim(1), c = context.dim(2);
  Tensor out = Tensor::empty({n, sample.dim(1), sample.dim(2), cfg_.out_channels});
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t n0 = 0; n0 < n; n0 += pb) {
    const int64_t count = std::min(pb, n - n0);
    std::map<std::string, Tensor> values;
    values["sample"] = nchw_chunk(sample, n0, count, pb);
    Tensor t = Tensor::empty({pb});
    for (int64_t b = 0; b < pb; ++b) t.f32()[b] = timestep;
    values["timestep"] = std::move(t);
    Tensor ctx = Tensor::empty({pb, c, 1, s});  // Apple's [B, C, 1, S]
    for (int64_t b = 0; b < pb; ++b) {
      const float* src = context.f32() + std::min(n0 + b, n - 1) * s * c;
      float* dst = ctx.f32() + b * c * s;
      for (int64_t i = 0; i < s; ++i)
        for (int64_t ch = 0; ch < c; ++ch) dst[ch * s + i] = src[i * c + ch];
    }
    values["encoder_hidden_states"] = std::move(ctx);
    // Each chunk takes the inputs it declares from everything computed so far.
    for (size_t k = 0; k < chunks_.size(); ++k) {
      std::map<std::string, Tensor> in;
      for (const auto& decl : chunks_[k]->program.main().inputs) {
        auto it = values.find(decl.name);
        if (it == values.end()) fail(ErrorCode::kModel, chunks_[k]->location + ": nothing provides input '" + decl.name + "'");
        in.emplace(decl.name, it->second);
      }
      for (auto& [name, v] : interps_[k].run(in)) values[name] = std::move(v);
    }
    Tensor pred = take(values, *chunks_.back(), "noise_pred");
    put_nhwc(pred, count, out, n0);
  }
  return out;
}

MilVaeDecoder::MilVaeDecoder(std::shared_ptr<const coreml::CoreMLModel> model, VaeConfig cfg,
                             mil::InterpreterOptions opts)
    : model_(std::move(model)), cfg_(std::move(cfg)), interp_(*model_, opts) {
  z_shape_ = static_shape(*model_, "z");
  check(z_shape_.size() == 4, ErrorCode::kModel, model_->location + ": z must be [B, C, h, w]");
}

Tensor MilVaeDecoder::forward(const Tensor& z) const {
  const int64_t n = z.dim(0), pb = z_shape_[0];
  if (z.dim(1) != z_shape_[2] || z.dim(2) != z_shape_[3])
    fail(ErrorCode::kInvalidArgument, model_->location + " was converted for " + std::to_string(z_shape_[2]) + "x" +
                                          std::to_string(z_shape_[3]) + " latents; got " + std::to_string(z.dim(1)) +
                                          "x" + std::to_string(z.dim(2)));
  Tensor out;
  bool first = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t n0 = 0; n0 < n; n0 += pb) {
    const int64_t count = std::min(pb, n - n0);
    auto outs = interp_.run({{"z", nchw_chunk(z, n0, count, pb)}});
    Tensor img = take(outs, *model_, "image");
    check(img.shape().size() == 4, ErrorCode::kModel, model_->location + ": image must be [B, 3, H, W]");
    if (first) out = Tensor::empty({n, img.dim(2), img.dim(3), img.dim(1)});
    first = false;
    put_nhwc(img, count, out, n0);
  }
  return out;
}

namespace {

// The first output of the op whose operand `arg` is the constant with Core ML base name `base`.
std::string output_of_op_reading(const coreml::MilFunction& f, const char* arg, const std::string& base) {
  for (const coreml::MilOp& op : f.block.ops) {
    const coreml::MilArgument* a = op.input(arg);
    if (a && a->bindings.size() == 1 && coreml_base_name(a->bindings[0].name) == base && !op.outputs.empty())
      return op.outputs[0].name;
  }
  return {};
}

// Python's round(x, 3), as diffusers reports the scores.
double round3(double x) { return std::nearbyint(x * 1000.0) / 1000.0; }

mil::InterpreterOptions score_outputs(mil::InterpreterOptions o) {
  o.outputs = {"concept_scores", "has_nsfw_concepts"};
  return o;
}

}  // namespace

MilSafetyChecker::MilSafetyChecker(std::shared_ptr<const coreml::CoreMLModel> model, ClipVisionConfig cfg,
                                   mil::InterpreterOptions opts)
    : model_(std::move(model)), cfg_(cfg), interp_([&] {
        opts.observer = [this](const coreml::MilOp& op, const std::vector<Tensor>& outs) {
          if (op.outputs.empty() || outs.empty()) return;
          if (op.outputs[0].name == embeds_var_) seen_embeds_ = outs[0].clone();
          if (op.outputs[0].name == special_var_) seen_special_ = outs[0].clone();
        };
        return mil::Interpreter(*model_, score_outputs(opts));
      }()) {
  const coreml::MilFunction& f = model_->program.main();
  embeds_var_ = output_of_op_reading(f, "weight", "visual_projection_weight");
  if (embeds_var_.empty()) embeds_var_ = output_of_op_reading(f, "y", "visual_projection_weight");
  sdpal::check(!embeds_var_.empty(), ErrorCode::kModel, model_->location + ": no visual_projection layer");
  for (const coreml::MilOp& op : f.block.ops)
    if (op.type == "add" && !op.outputs.empty())
      for (const auto& arg : op.inputs)
        for (const coreml::MilBinding& b : arg.bindings)
          if (!b.is_value() && b.name == "adjustment") special_var_ = op.outputs[0].name;
  const Shape clip = static_shape(*model_, "clip_input");
  sdpal::check(clip.size() == 4 && clip[0] == 1 && clip[1] == cfg_.num_channels && clip[2] == cfg_.image_size &&
            clip[3] == cfg_.image_size,
        ErrorCode::kModel, model_->location + ": clip_input must be [1, 3, S, S], is " + shape_str(clip));
  images_shape_ = static_shape(*model_, "images");
}

MilSafetyChecker::Run MilSafetyChecker::run_one(const Tensor& pixels, int64_t i) const {
  const int64_t s = cfg_.image_size;
  sdpal::check(pixels.rank() == 4 && pixels.dim(1) == s && pixels.dim(2) == s && pixels.dim(3) == cfg_.num_channels,
        ErrorCode::kInvalidArgument, "safety checker: expected pixels [N, " + std::to_string(s) + ", " +
                                         std::to_string(s) + ", 3], got " + shape_str(pixels.shape()));
  seen_embeds_ = Tensor();
  seen_special_ = Tensor();
  Tensor adjustment = Tensor::zeros({1});
  auto outs = interp_.run({{"clip_input", nchw_chunk(pixels, i, 1, 1)},
                           {"images", Tensor::zeros(images_shape_)},
                           {"adjustment", std::move(adjustment)}});
  Run r;
  r.concepts = take(outs, *model_, "concept_scores");
  r.nsfw = take(outs, *model_, "has_nsfw_concepts").f32()[0] > 0.5f;
  r.embeds = seen_embeds_;
  r.special = seen_special_;
  return r;
}

Tensor MilSafetyChecker::image_embeds(const Tensor& pixels) const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t n = pixels.dim(0), p = cfg_.projection_dim;
  Tensor out = Tensor::empty({n, p});
  for (int64_t i = 0; i < n; ++i) {
    Run r = run_one(pixels, i);
    sdpal::check(r.embeds.defined() && r.embeds.numel() == p, ErrorCode::kModel,
          model_->location + ": the visual projection did not give " + std::to_string(p) + " values");
    std::memcpy(out.f32() + i * p, r.embeds.f32(), size_t(p) * sizeof(float));
  }
  return out;
}

std::vector<SafetyResult> MilSafetyChecker::check(const Tensor& pixels) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SafetyResult> out;
  for (int64_t i = 0; i < pixels.dim(0); ++i) {
    Run r = run_one(pixels, i);
    SafetyResult res;
    res.nsfw = r.nsfw;
    for (int64_t k = 0; k < r.concepts.numel(); ++k) res.concept_scores.push_back(round3(r.concepts.f32()[k]));
    // As diffusers reports them: every special-care score after the first positive one carries the
    // 0.01 adjustment (Apple's program only adds it to the concept scores).
    double adjustment = 0.0;
    if (r.special.defined())
      for (int64_t k = 0; k < r.special.numel(); ++k) {
        res.special_scores.push_back(round3(r.special.f32()[k] + adjustment));
        if (res.special_scores.back() > 0) adjustment = 0.01;
      }
    out.push_back(std::move(res));
  }
  return out;
}

}  // namespace sdpal
