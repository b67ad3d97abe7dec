#include "io/png.h"

#include <png.h>

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace sdpal {

namespace {

// libpng reports errors by longjmp. Every function below that calls setjmp holds only plain
// data, so the jump never skips a destructor; C++ objects live in the callers.
struct PngCtx {
  png_structp png = nullptr;
  png_infop info = nullptr;
  char message[256] = {0};
};

void on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngCtx*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

bool write_all(PngCtx* ctx, std::FILE* fp, const uint8_t* rgb, png_uint_32 width, png_uint_32 height,
               png_textp text, int num_text) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_init_io(ctx->png, fp);
  png_set_IHDR(ctx->png, ctx->info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (num_text > 0) png_set_text(ctx->png, ctx->info, text, num_text);
  png_write_info(ctx->png, ctx->info);
  for (png_uint_32 y = 0; y < height; ++y)
    png_write_row(ctx->png, const_cast<png_bytep>(rgb + size_t(y) * width * 3));
  png_write_end(ctx->png, ctx->info);
  return true;
}

struct ReadCursor {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

void read_fn(png_structp png, png_bytep out, size_t n) {
  auto* c = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (n > c->size - c->pos) png_error(png, "unexpected end of file");
  std::memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

constexpr png_uint_32 kMaxSide = 32768;

// Reads the header and sets up the transforms that turn every PNG into RGB8.
bool read_header(PngCtx* ctx, ReadCursor* cursor, png_uint_32* width, png_uint_32* height, size_t* rowbytes,
                 uint64_t* raw_bytes) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_set_read_fn(ctx->png, cursor, read_fn);
  png_set_user_limits(ctx->png, kMaxSide, kMaxSide);
  png_read_info(ctx->png, ctx->info);
  *raw_bytes = (uint64_t(png_get_rowbytes(ctx->png, ctx->info)) + 1) * png_get_image_height(ctx->png, ctx->info);
  const int color = png_get_color_type(ctx->png, ctx->info);
  if (png_get_bit_depth(ctx->png, ctx->info) == 16) png_set_strip_16(ctx->png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_expand_gray_1_2_4_to_8(ctx->png);
    png_set_gray_to_rgb(ctx->png);
  }
  // Expanding transparency to alpha and stripping it drops tRNS like PIL's convert("RGB").
  if (png_get_valid(ctx->png, ctx->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(ctx->png);
  png_set_strip_alpha(ctx->png);
  png_set_interlace_handling(ctx->png);
  png_read_update_info(ctx->png, ctx->info);
  if (png_get_bit_depth(ctx->png, ctx->info) != 8 || png_get_channels(ctx->png, ctx->info) != 3)
    png_error(ctx->png, "could not convert to 8-bit RGB");
  *width = png_get_image_width(ctx->png, ctx->info);
  *height = png_get_image_height(ctx->png, ctx->info);
  *rowbytes = png_get_rowbytes(ctx->png, ctx->info);
  return true;
}

bool read_pixels(PngCtx* ctx, png_bytepp rows) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_read_image(ctx->png, rows);
  png_read_end(ctx->png, ctx->info);
  return true;
}

// Appends code point `c` (< 0x110000) as UTF-8.
void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

std::string latin1_to_utf8(const char* s, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) append_utf8(out, uint8_t(s[i]));
  return out;
}

// Decodes strict UTF-8 (no overlongs, surrogates or NUL). Returns false if invalid.
bool decode_utf8(const std::string& s, std::vector<uint32_t>& cps) {
  cps.clear();
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = uint8_t(s[i]);
    int len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) {
      const uint8_t cb = uint8_t(s[i + k]);
      if ((cb & 0xC0) != 0x80) return false;
      c = (c << 6) | (cb & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < kMin[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) || c == 0) return false;
    cps.push_back(c);
    i += len;
  }
  return true;
}

void check_keyword(const std::string& key, const std::string& path) {
  bool ok = !key.empty() && key.size() <= 79 && key.front() != ' ' && key.back() != ' ';
  for (size_t i = 0; ok && i < key.size(); ++i) {
    const unsigned char c = key[i];
    ok = c >= 32 && c <= 126 && !(c == ' ' && i > 0 && key[i - 1] == ' ');
  }
  check(ok, ErrorCode::kInvalidArgument,
        "invalid PNG text key '" + key + "' for '" + path + "': need 1-79 printable ASCII characters");
}

}  // namespace

void write_png(const std::string& path, const uint8_t* rgb, int width, int height, const TextChunks& text_chunks) {
  check(rgb != nullptr && width > 0 && height > 0 && width <= int(kMaxSide) && height <= int(kMaxSide),
        ErrorCode::kInvalidArgument,
        "cannot write '" + path + "': invalid image size " + std::to_string(width) + "x" + std::to_string(height));

  // Owned text buffers; png_text only points into them.
  std::vector<std::string> keys, values;
  std::vector<bool> utf8;
  std::vector<uint32_t> cps;
  for (const auto& [key, value] : text_chunks) {
    check_keyword(key, path);
    check(decode_utf8(value, cps), ErrorCode::kInvalidArgument,
          "PNG text '" + key + "' for '" + path + "' is not valid UTF-8 (or contains NUL)");
    bool latin1 = true;
    for (uint32_t c : cps) latin1 = latin1 && c <= 0xFF;
    keys.push_back(key);
    if (latin1) {
      std::string bytes;
      for (uint32_t c : cps) bytes += char(uint8_t(c));
      values.push_back(std::move(bytes));
    } else {
      values.push_back(value);
    }
    utf8.push_back(!latin1);
  }
  static char kEmpty[] = "";
  std::vector<png_text> text(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    png_text& t = text[i];
    std::memset(&t, 0, sizeof t);
    t.key = keys[i].data();
    t.text = values[i].data();
    if (utf8[i]) {
      t.compression = PNG_ITXT_COMPRESSION_NONE;
      t.itxt_length = values[i].size();
      t.lang = kEmpty;
      t.lang_key = kEmpty;
    } else {
      t.compression = PNG_TEXT_COMPRESSION_NONE;
      t.text_length = values[i].size();
    }
  }

  AtomicFileWriter out(path);  // throws naming the path if the directory is not writable
  PngCtx ctx;
  ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  if (!ctx.png) fail(ErrorCode::kInternal, "cannot initialise libpng for '" + path + "'");
  ctx.info = png_create_info_struct(ctx.png);
  const bool ok = ctx.info && write_all(&ctx, out.stream(), rgb, png_uint_32(width), png_uint_32(height),
                                        text.data(), int(text.size()));
  png_destroy_write_struct(&ctx.png, &ctx.info);
  if (!ok) fail(ErrorCode::kIo, "cannot write PNG '" + path + "': " + (ctx.message[0] ? ctx.message : "out of memory"));
  out.commit();
}

Image read_png(const std::string& path) {
  auto file = MappedFile::open(path);
  if (file->size() < 8 || png_sig_cmp(file->data(), 0, 8) != 0)
    fail(ErrorCode::kFormat, "'" + path + "' is not a PNG file");

  PngCtx ctx;
  ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  if (!ctx.png) fail(ErrorCode::kInternal, "cannot initialise libpng for '" + path + "'");
  struct Destroy {
    PngCtx& c;
    ~Destroy() { png_destroy_read_struct(&c.png, &c.info, nullptr); }
  } destroy{ctx};
  ctx.info = png_create_info_struct(ctx.png);
  if (!ctx.info) fail(ErrorCode::kInternal, "cannot initialise libpng for '" + path + "'");

  ReadCursor cursor{file->data(), file->size(), 0};
  png_uint_32 width = 0, height = 0;
  size_t rowbytes = 0;
  uint64_t raw_bytes = 0;
  if (!read_header(&ctx, &cursor, &width, &height, &rowbytes, &raw_bytes))
    fail(ErrorCode::kFormat, "cannot read PNG '" + path + "': " + ctx.message);
  // Deflate expands at most ~1032:1, so a header claiming more pixel data than the file could
  // hold is corrupt; checking first avoids allocating for it.
  if (raw_bytes / 1032 > file->size())
    fail(ErrorCode::kFormat, "cannot read PNG '" + path + "': image size exceeds what the file can hold");
  if (uint64_t(width) * height > (uint64_t(1) << 28))
    fail(ErrorCode::kUnsupported, "PNG '" + path + "' is too large (" + std::to_string(width) + "x" + std::to_string(height) + ")");
  if (width == 0 || height == 0 || rowbytes != size_t(width) * 3)
    fail(ErrorCode::kFormat, "cannot read PNG '" + path + "': unexpected row size");

  Image img;
  img.width = int(width);
  img.height = int(height);
  img.rgb.resize(size_t(width) * height * 3);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = img.rgb.data() + size_t(y) * rowbytes;
  if (!read_pixels(&ctx, rows.data())) fail(ErrorCode::kFormat, "cannot read PNG '" + path + "': " + ctx.message);

  png_textp text = nullptr;
  int num_text = 0;
  png_get_text(ctx.png, ctx.info, &text, &num_text);
  for (int i = 0; i < num_text; ++i) {
    const png_text& t = text[i];
    std::string key = latin1_to_utf8(t.key, std::strlen(t.key));
    const bool itxt = t.compression == PNG_ITXT_COMPRESSION_NONE || t.compression == PNG_ITXT_COMPRESSION_zTXt;
    std::string value = !t.text       ? std::string()
                        : itxt        ? std::string(t.text, t.itxt_length)
                                      : latin1_to_utf8(t.text, t.text_length);
    img.text.emplace_back(std::move(key), std::move(value));
  }
  return img;
}

}  // namespace sdpal
