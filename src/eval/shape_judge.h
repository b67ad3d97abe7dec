// A deterministic judge for pictures of one simple shape on a plain background (the sdpal demo
// model's "shapes" world, demo/make_dataset.py): which color is the background, which color is the
// shape, where it is (3 x 3 grid) and which shape it is (circle, square, triangle, cross), from
// simple pixel statistics. No learning, no randomness: the same image always gets the same verdict.
//
// Method
//   background  per-channel median of the 2-pixel border ring, named by the nearest palette color
//   foreground  pixels farther than kForegroundDistance (RGB) from the background; the largest
//               8-connected component is "the shape"; its color is the majority palette name of its
//               core pixels (the farthest from the background, i.e. not anti-aliased edge pixels)
//   coverage    each pixel's alpha = its projection on the background -> shape-color line, so
//               anti-aliased edges count fractionally (area, centroid, moments)
//   position    the alpha-weighted centroid's cell in the 3 x 3 grid
//   size        "large" when the bounding box's longer side is >= kLargeExtent pixels (of 64)
//   shape       nearest prototype in a small feature space (see ShapeFeatures), all measured
//               relative to the bounding box so they do not depend on size
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sdpal::eval {

struct NamedColor {
  std::string name;
  std::array<uint8_t, 3> rgb;
};
using Palette = std::vector<NamedColor>;

// The 11 named colors of demo/make_dataset.py (PALETTE), same order.
const Palette& demo_palette();
// Index of the palette color nearest to rgb (Euclidean RGB distance).
int nearest_color(const Palette& palette, const float rgb[3]);

enum class ShapeKind { None = -1, Circle = 0, Square = 1, Triangle = 2, Cross = 3 };
const char* shape_name(ShapeKind s);
ShapeKind parse_shape(const std::string& name);  // ShapeKind::None when unknown

// "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right":
// index = row * 3 + column.
const std::vector<std::string>& position_names();
int parse_position(const std::string& name);  // -1 when unknown

struct ShapeFeatures {
  double area = 0;           // sum of alpha over the shape's pixels
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // bounding box of pixels with alpha >= 0.5, inclusive
  double fill = 0;           // area / bounding-box area: square 1, circle 0.79, cross 0.56, triangle 0.5
  double aspect = 0;         // bbox width / height
  double compactness = 0;    // 4 pi area / perimeter^2 (perimeter from the alpha >= 0.5 boundary)
  double centroid_y = 0;     // centroid height in the bbox, 0 top .. 1 bottom: triangle 0.67, others 0.5
  double corners_top = 0;    // mean alpha of the two top corner cells of the bbox's 3 x 3 split
  double corners_bottom = 0; // same, bottom corners
  double middle = 0;         // mean alpha of the bbox's center cell
  double cross_moment = 0;   // 2 E[u^2 v^2] / E[u^4 + v^4] of the coverage, u, v = centred coordinates
                             // over their standard deviations: square 0.56, circle 0.33, cross ~0.1
};

struct Judgement {
  bool found = false;        // false when nothing stands out from the background
  int background = -1;       // palette index
  int foreground = -1;       // palette index
  int position = -1;         // index into position_names()
  ShapeKind shape = ShapeKind::None;
  bool large = false;
  double cx = 0, cy = 0;     // alpha-weighted centroid, pixels
  float background_rgb[3] = {0, 0, 0};
  float foreground_rgb[3] = {0, 0, 0};
  int components = 0;        // foreground components of at least kMinComponentPixels pixels
  ShapeFeatures features;
};

constexpr float kForegroundDistance = 48.f;  // RGB distance from the background that counts as foreground
constexpr int kMinComponentPixels = 6;
constexpr int kLargeExtent = 18;

// rgb: HWC RGB8, width x height (any size; positions and extents scale with the image, thresholds
// on extents assume 64 x 64).
Judgement judge_image(const uint8_t* rgb, int width, int height, const Palette& palette = demo_palette());

// Measures the shape features of a coverage map (alpha in [0, 1], row-major width x height).
ShapeFeatures measure_shape(const std::vector<float>& alpha, int width, int height);
ShapeKind classify_shape(const ShapeFeatures& f);

}  // namespace sdpal::eval
