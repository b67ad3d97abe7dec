// Pillow's Image.resize for 8-bit RGB images, bit for bit: the preprocessing of reference
// pipelines (CLIPImageProcessor) resizes through PIL, so matching its integer arithmetic is the
// only way to feed the safety checker identical pixels.
#pragma once
#include <cstdint>
#include <vector>

namespace sdpal {

// PIL.Image.Resampling values.
enum class PilFilter : int { kBilinear = 2, kBicubic = 3 };

// Resizes a width x height RGB8 image (rows of width * 3 bytes) to out_width x out_height the
// way Pillow 11 does with box=None and reducing_gap=None: a horizontal then a vertical pass of
// a separable filter whose support grows with the downscale factor, coefficients rounded to
// 22-bit fixed point, each pass rounded and clipped to uint8. Throws Error(kInvalidArgument) for
// non-positive or oversized dimensions.
std::vector<uint8_t> pil_resize_rgb8(const uint8_t* rgb, int width, int height, int out_width, int out_height,
                                     PilFilter filter);

}  // namespace sdpal
