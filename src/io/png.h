// PNG files: 8-bit RGB output images with text chunks (generation parameters), and reading any
// PNG back as RGB8 (tests, img2img inputs).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sdpal {

using TextChunks = std::vector<std::pair<std::string, std::string>>;

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height rows of width * 3 bytes
  TextChunks text;           // key/value pairs, UTF-8, in file order
};

// Writes RGB8 pixels (height rows of width * 3 bytes) and text chunks, e.g. {"parameters", ...}
// as A1111 does. Values representable in Latin-1 go to tEXt, others to uncompressed iTXt (UTF-8).
// Keys must be 1-79 printable ASCII characters without leading, trailing or double spaces.
// The file is written under a temporary name in the same directory and renamed, so `path` is
// either complete or untouched. Throws Error(kInvalidArgument) for bad sizes/keys/invalid UTF-8,
// Error(kIo) naming the path when it cannot be written.
void write_png(const std::string& path, const uint8_t* rgb, int width, int height, const TextChunks& text_chunks = {});

// Reads any PNG (gray, gray+alpha, palette, RGB, RGBA; 1-16 bit; interlaced) as RGB8: alpha is
// dropped and 16-bit samples keep their high byte, as PIL's convert("RGB") does. Text from tEXt,
// zTXt and iTXt chunks is returned as UTF-8. Throws Error(kIo) if unreadable, Error(kFormat) if
// malformed, Error(kUnsupported) above 32768 pixels a side or 2^28 pixels.
Image read_png(const std::string& path);

}  // namespace sdpal
