#include "io/image_preprocess.h"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/pil_resize.h"

namespace sdpal {

namespace {

using json = nlohmann::json;

[[noreturn]] void bad_field(const std::string& field, const std::string& why) {
  fail(ErrorCode::kFormat, "preprocessor config: field '" + field + "' " + why);
}

int positive_int(const json& v, const std::string& field) {
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 16))
    bad_field(field, "must be a positive integer");
  return int(v.get<int64_t>());
}

// {height, width} from an int (square), a [h, w] list or a {"height", "width"} object.
void parse_hw(const json& v, const std::string& field, int& h, int& w) {
  if (v.is_number()) {
    h = w = positive_int(v, field);
  } else if (v.is_array() && v.size() == 2) {
    h = positive_int(v[0], field);
    w = positive_int(v[1], field);
  } else if (v.is_object() && v.contains("height") && v.contains("width")) {
    h = positive_int(v["height"], field + ".height");
    w = positive_int(v["width"], field + ".width");
  } else {
    bad_field(field, "must be an integer, [height, width] or {\"height\", \"width\"}");
  }
}

std::array<double, 3> parse_triple(const json& v, const std::string& field) {
  if (v.is_number()) {
    const double x = v.get<double>();
    return {x, x, x};
  }
  if (!v.is_array() || v.size() != 3) bad_field(field, "must be a number or a list of 3 numbers");
  std::array<double, 3> out{};
  for (int i = 0; i < 3; ++i) {
    if (!v[i].is_number()) bad_field(field, "must be a number or a list of 3 numbers");
    out[i] = v[i].get<double>();
  }
  return out;
}

void get_bool(const json& j, const char* field, bool& out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_boolean()) bad_field(field, "must be true or false");
  out = it->get<bool>();
}

// Python floor division, used by the crop offset.
int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

}  // namespace

PreprocessConfig parse_preprocessor_config(const nlohmann::json& j) {
  if (!j.is_object()) fail(ErrorCode::kFormat, "preprocessor config is not a JSON object");
  PreprocessConfig c;
  get_bool(j, "do_resize", c.do_resize);
  get_bool(j, "do_center_crop", c.do_center_crop);
  get_bool(j, "do_rescale", c.do_rescale);
  get_bool(j, "do_normalize", c.do_normalize);
  get_bool(j, "do_convert_rgb", c.do_convert_rgb);
  if (auto it = j.find("size"); it != j.end() && !it->is_null()) {
    // An int means the shortest edge here (default_to_square=False in CLIPImageProcessor).
    if (it->is_number()) {
      c.shortest_edge = positive_int(*it, "size");
    } else if (it->is_object() && it->contains("shortest_edge")) {
      c.shortest_edge = positive_int((*it)["shortest_edge"], "size.shortest_edge");
    } else {
      parse_hw(*it, "size", c.resize_height, c.resize_width);
      c.shortest_edge = 0;
    }
  }
  if (auto it = j.find("crop_size"); it != j.end() && !it->is_null()) parse_hw(*it, "crop_size", c.crop_height, c.crop_width);
  if (auto it = j.find("resample"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) bad_field("resample", "must be an integer");
    c.resample = it->get<int>();
    if (c.resample != int(PilFilter::kBilinear) && c.resample != int(PilFilter::kBicubic))
      fail(ErrorCode::kUnsupported, "preprocessor config: resample " + std::to_string(c.resample) +
                                        " is not supported (2 bilinear, 3 bicubic)");
  }
  if (auto it = j.find("rescale_factor"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) bad_field("rescale_factor", "must be a number");
    c.rescale_factor = it->get<double>();
  }
  if (auto it = j.find("image_mean"); it != j.end() && !it->is_null()) c.image_mean = parse_triple(*it, "image_mean");
  if (auto it = j.find("image_std"); it != j.end() && !it->is_null()) c.image_std = parse_triple(*it, "image_std");
  return c;
}

Tensor clip_preprocess(const uint8_t* rgb, int width, int height, const PreprocessConfig& cfg) {
  check(rgb != nullptr && width > 0 && height > 0 && width <= (1 << 16) && height <= (1 << 16),
        ErrorCode::kInvalidArgument, "clip_preprocess: invalid image size " + std::to_string(width) + "x" + std::to_string(height));
  const uint8_t* img = rgb;
  int w = width, h = height;
  std::vector<uint8_t> resized;
  if (cfg.do_resize) {
    int out_h = cfg.resize_height, out_w = cfg.resize_width;
    if (cfg.shortest_edge > 0) {  // get_resize_output_image_size with default_to_square=False
      const int short_side = std::min(w, h), long_side = std::max(w, h);
      const int new_short = cfg.shortest_edge;
      const int64_t new_long = int64_t(double(int64_t(new_short) * long_side) / double(short_side));
      check(new_long <= (1 << 16), ErrorCode::kInvalidArgument,
            "clip_preprocess: aspect ratio of " + std::to_string(width) + "x" + std::to_string(height) + " is too extreme");
      if (w <= h) {
        out_w = new_short;
        out_h = int(new_long);
      } else {
        out_h = new_short;
        out_w = int(new_long);
      }
    }
    check(out_h > 0 && out_w > 0, ErrorCode::kInvalidArgument, "clip_preprocess: no resize size configured");
    resized = pil_resize_rgb8(rgb, w, h, out_w, out_h, PilFilter(cfg.resample));
    img = resized.data();
    w = out_w;
    h = out_h;
  }
  const int ch = cfg.do_center_crop ? cfg.crop_height : h;
  const int cw = cfg.do_center_crop ? cfg.crop_width : w;
  check(ch > 0 && cw > 0 && int64_t(ch) * cw <= (int64_t(1) << 26), ErrorCode::kInvalidArgument,
        "clip_preprocess: invalid crop size " + std::to_string(ch) + "x" + std::to_string(cw));
  const int top = floor_div2(h - ch), left = floor_div2(w - cw);  // pixels outside the image are 0

  float mean[3], stdev[3];
  for (int c = 0; c < 3; ++c) {
    mean[c] = float(cfg.image_mean[c]);  // numpy casts mean/std to the image's float32
    stdev[c] = float(cfg.image_std[c]);
  }
  Tensor out = Tensor::empty({1, ch, cw, 3});
  float* dst = out.f32();
  for (int y = 0; y < ch; ++y) {
    for (int x = 0; x < cw; ++x) {
      const int sy = top + y, sx = left + x;
      const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
      for (int c = 0; c < 3; ++c) {
        const uint8_t v = inside ? img[(size_t(sy) * w + sx) * 3 + c] : 0;
        float f = cfg.do_rescale ? float(double(v) * cfg.rescale_factor) : float(v);
        if (cfg.do_normalize) f = (f - mean[c]) / stdev[c];
        *dst++ = f;
      }
    }
  }
  return out;
}

}  // namespace sdpal
