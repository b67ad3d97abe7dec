// The pipeline's networks run by the MIL interpreter on Apple's Core ML programs as they are
// (`--executor mil`): the reference the native path is checked against, and a way to run a program
// whose graph the native modules do not cover. Inputs are converted to Apple's conventions:
// NCHW latents, `encoder_hidden_states` as [B, C, 1, S], `input_ids` as fp32, bound by name, in
// the program's fixed batch (larger batches run in chunks, a short last chunk is padded). By default
// every fp16 value is rounded to fp16 between ops, as Core ML computes; tests can turn that off
// (InterpreterOptions::fp16_rounding) to compare with the native modules at fp32 precision.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/coreml/model_folder.h"
#include "mil/interpreter.h"
#include "model/networks.h"

namespace sdpal {

class MilTextEncoder : public TextEncoderNetwork {
 public:
  MilTextEncoder(std::shared_ptr<const coreml::CoreMLModel> model, ClipTextConfig cfg, mil::InterpreterOptions opts = {});
  Tensor forward(const std::vector<int32_t>& ids, int64_t batch) const override;
  const ClipTextConfig& config() const override { return cfg_; }

 private:
  std::shared_ptr<const coreml::CoreMLModel> model_;
  ClipTextConfig cfg_;
  mutable std::mutex mu_;
  mutable mil::Interpreter interp_;
};

// One UNet program, or Apple's two chunks (UnetChunk1 feeds UnetChunk2 by output name).
class MilUNet : public UNetNetwork {
 public:
  MilUNet(std::vector<std::shared_ptr<const coreml::CoreMLModel>> chunks, UNetConfig cfg,
          mil::InterpreterOptions opts = {});
  Tensor forward(const Tensor& sample, float timestep, const Tensor& context) const override;
  const UNetConfig& config() const override { return cfg_; }

 private:
  std::vector<std::shared_ptr<const coreml::CoreMLModel>> chunks_;
  UNetConfig cfg_;
  mutable std::mutex mu_;
  mutable std::vector<mil::Interpreter> interps_;
  Shape sample_shape_;  // the program's [B, C, h, w]
};

class MilVaeDecoder : public VaeDecoderNetwork {
 public:
  MilVaeDecoder(std::shared_ptr<const coreml::CoreMLModel> model, VaeConfig cfg, mil::InterpreterOptions opts = {});
  Tensor forward(const Tensor& z) const override;
  const VaeConfig& config() const override { return cfg_; }

 private:
  std::shared_ptr<const coreml::CoreMLModel> model_;
  VaeConfig cfg_;
  mutable std::mutex mu_;
  mutable mil::Interpreter interp_;
  Shape z_shape_;
};

// Apple's SafetyChecker program (model/coreml_safety_checker.h) on the feature extractor's pixels,
// one image at a time (the program's batch is 1). Only the scores are computed: the program's
// image-zeroing branch (filtered_images) is not run; `images` is bound to zeros and `adjustment`
// to 0, as Apple's Swift pipeline does. Scores are reported as the native checker (diffusers)
// reports them, rounded to 3 decimals;
// Apple's program thresholds them unrounded, so a score within 0.0005 of 0 may round to 0 and
// still flag the image.
class MilSafetyChecker : public SafetyCheckerNetwork {
 public:
  MilSafetyChecker(std::shared_ptr<const coreml::CoreMLModel> model, ClipVisionConfig cfg,
                   mil::InterpreterOptions opts = {});
  Tensor image_embeds(const Tensor& pixels) const override;
  std::vector<SafetyResult> check(const Tensor& pixels) const override;
  const ClipVisionConfig& config() const override { return cfg_; }

 private:
  struct Run {
    Tensor embeds, special, concepts;  // [1, proj], [1, 3], [1, 17]
    bool nsfw = false;
  };
  Run run_one(const Tensor& pixels, int64_t i) const;

  std::shared_ptr<const coreml::CoreMLModel> model_;
  ClipVisionConfig cfg_;
  std::string embeds_var_, special_var_;  // observed: the projection's and the special-care add's outputs
  mutable std::mutex mu_;
  mutable Tensor seen_embeds_, seen_special_;
  mutable mil::Interpreter interp_;
  Shape images_shape_;
};

}  // namespace sdpal
