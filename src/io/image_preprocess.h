// The safety checker's image preprocessing, as transformers' CLIPImageProcessor (4.46) does it:
// resize through PIL, center crop, rescale, normalize.
#pragma once
#include <array>
#include <cstdint>

#include <nlohmann/json_fwd.hpp>

#include "core/tensor.h"

namespace sdpal {

// Fields of preprocessor_config.json; defaults are CLIPImageProcessor's.
struct PreprocessConfig {
  bool do_resize = true;
  int shortest_edge = 224;  // > 0: scale the shorter side to this, keeping the aspect ratio
  int resize_height = 0;    // used when shortest_edge == 0 (size given as height/width)
  int resize_width = 0;
  int resample = 3;  // PIL: 2 bilinear, 3 bicubic
  bool do_center_crop = true;
  int crop_height = 224;
  int crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};
  bool do_convert_rgb = true;  // inputs are always RGB here; kept for completeness
};

// Reads the fields above (size: int, [h, w], {"shortest_edge"} or {"height", "width"};
// crop_size: int, [h, w] or {"height", "width"}; image_mean/std: number or 3 numbers).
// Missing fields keep their defaults. Throws Error(kFormat) naming the field if malformed,
// Error(kUnsupported) for a resample other than bilinear/bicubic.
PreprocessConfig parse_preprocessor_config(const nlohmann::json& j);

// Pixel values for one width x height RGB8 image, NHWC float [1, crop_h, crop_w, 3] (or the
// resized size without center crop). Bit-exact with the reference: the resize reproduces PIL's
// uint8 arithmetic, the crop pads with zeros when the image is smaller, rescale multiplies in
// double and rounds to float, normalize works in float.
Tensor clip_preprocess(const uint8_t* rgb, int width, int height, const PreprocessConfig& cfg);

}  // namespace sdpal
