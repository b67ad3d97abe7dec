// Unicode and ftfy data for the CLIP tokenizer, measured from the Python reference stack.
// The tables live in unicode_data.cpp, written by scripts/gen_unicode_tables.py (see its
// docstring for where each table comes from); this header is the hand-written interface.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sdpal::unicode {

// Per-code-point property bits (props()).
enum : uint16_t {
  kTokLetter = 1u << 0,       // matches [\p{L}] in the `regex` module with IGNORECASE
  kTokNumber = 1u << 1,       // matches [\p{N}] (IGNORECASE)
  kTokOther = 1u << 2,        // matches [^\s\p{L}\p{N}] (IGNORECASE)
  kRegexSpace = 1u << 3,      // `regex` module \s (transformers' whitespace_clean)
  kPySpace = 1u << 4,         // Python str.isspace() (str.strip)
  kReWord = 1u << 5,          // Python `re` \w (ftfy's patterns)
  kReSpace = 1u << 6,         // Python `re` \s
  kReDigit = 1u << 7,         // Python `re` \d
  kCased = 1u << 8,           // Cased, as str.lower()'s final-sigma rule sees it
  kCaseIgnorable = 1u << 9,   // Case_Ignorable, likewise
};
uint16_t props(char32_t c);

// str.lower() of one code point (full mappings, e.g. U+0130 -> "i\u0307"), except that the
// context-dependent U+03A3 maps to U+03C3 here. Writes 1..3 code points, returns the count.
int to_lower(char32_t c, char32_t out[3]);

// Canonical normalization data (unicodedata of the reference Python).
uint8_t combining_class(char32_t c);
std::u32string_view canonical_decomposition(char32_t c);  // full, unordered; empty: none (and Hangul)
char32_t primary_composite(char32_t first, char32_t second);  // 0: none (Hangul is algorithmic)

// ftfy data.
std::u32string_view ftfy_width(char32_t c);     // fix_character_width; empty: unchanged
std::u32string_view ftfy_ligature(char32_t c);  // fix_latin_ligatures; empty: unchanged
// `name` is the text between '&' and ';'. False when ftfy does not decode it.
bool html_entity(std::string_view name, std::u32string_view* value);
// What Python's html.unescape makes of a numeric character reference with this value.
std::u32string html_numeric_reference(uint64_t num);

// The single-byte encodings fix_encoding tries, in order. `high[b - 0x80]` is what byte b
// decodes to; bytes below 0x80 are ASCII, except that sloppy codecs decode 0x1A to U+FFFD.
struct Charmap {
  const char* name;
  bool sloppy;
  const char16_t* high;
};
constexpr int kNumCharmaps = 10;
extern const Charmap kCharmaps[kNumCharmaps];

// ftfy's mojibake detectors as code point sets. A BADNESS_RE alternative matches when the
// code point at each position is in that position's set (and, if anchored, at text start).
constexpr int kAnyButNewline = -1;  // the '.' of a pattern
constexpr int kReWordSet = -2;      // Python re \w
constexpr int kReSpaceSet = -3;     // Python re \s
struct BadBranch {
  bool anchored;
  uint8_t len;
  int16_t set[8];
};
bool set_contains(int set, char32_t c);
std::span<const BadBranch> badness_branches();
// UTF8_CLUES sets: first_of_2, first_of_3, first_of_4, continuation, continuation_strict.
extern const int kUtf8ClueSets[5];

// Table row types (used by unicode_data.cpp).
struct PropRun {
  char32_t first;
  uint16_t bits;
};
struct LowerRun {
  char32_t first, last;
  uint32_t step;
  int32_t delta;
};
struct SeqEntry {
  char32_t cp;
  uint32_t off, len;
};
struct CccRun {
  char32_t first, last;
  uint8_t ccc;
};
struct Composite {
  char32_t first, second, composite;
};
struct Entity {
  const char* name;
  uint32_t off, len;
};
struct CharPair {
  uint32_t from;
  char32_t to;
};
struct Range {
  char32_t first, last;
};
struct SetRef {
  uint32_t off, len;
};

}  // namespace sdpal::unicode
