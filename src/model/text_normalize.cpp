// ftfy.fix_text, NFC, str.lower and whitespace_clean on code point strings; see text_normalize.h.
#include "model/text_normalize.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "model/unicode_data.h"

namespace sdpal {
namespace {

using U32 = std::u32string;
using U32View = std::u32string_view;
using Bytes = std::string;  // byte strings of the encode/decode round trips

constexpr char32_t kReplacement = 0xFFFD;
constexpr int kMaxRounds = 64;  // ftfy loops until the text settles; we stop a runaway input

bool has_prop(char32_t c, uint16_t bit) { return (unicode::props(c) & bit) != 0; }
bool is_ascii_alnum(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_ascii_letter(char32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// Strict UTF-8 of Python's codec: no overlongs, surrogates or values past U+10FFFF.
// Returns the sequence length at s[i] when valid, else the length of the maximal invalid
// subpart (>= 1) negated.
int utf8_sequence(const unsigned char* s, size_t n, size_t i, char32_t* out) {
  unsigned char b = s[i];
  if (b < 0x80) {
    *out = b;
    return 1;
  }
  int len;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2, cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3, cp = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4, cp = b & 0x07;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= n) return -k;
    unsigned char c = s[i + k];
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return -k;
    cp = (cp << 6) | (c & 0x3F);
  }
  *out = cp;
  return len;
}

// bytes.decode("utf-8") (strict); nullopt on any error.
std::optional<U32> utf8_decode_strict(std::string_view s) {
  U32 out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    int len = utf8_sequence(p, s.size(), i, &cp);
    if (len < 0) return std::nullopt;
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalization and case
// ---------------------------------------------------------------------------------------------
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kSCount = 11172;

void decompose_into(char32_t c, U32& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    char32_t s = c - kSBase;
    out.push_back(kLBase + s / (kVCount * kTCount));
    out.push_back(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  U32View d = unicode::canonical_decomposition(c);
  if (d.empty()) out.push_back(c);
  else out.append(d);
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  return unicode::primary_composite(a, b);
}

// Python's final-sigma context: a cased letter before (skipping case-ignorables) and none after.
bool final_sigma(U32View s, size_t i) {
  size_t j = i;
  while (j > 0 && has_prop(s[j - 1], unicode::kCaseIgnorable)) --j;
  if (j == 0 || !has_prop(s[j - 1], unicode::kCased)) return false;
  size_t k = i + 1;
  while (k < s.size() && has_prop(s[k], unicode::kCaseIgnorable)) ++k;
  return k == s.size() || !has_prop(s[k], unicode::kCased);
}

// ---------------------------------------------------------------------------------------------
// ftfy's simple fixers
// ---------------------------------------------------------------------------------------------
// Decodes "&#...;" (body = what is between "&#" and ';') as html.unescape would; nullopt when
// ftfy keeps the reference as it is.
std::optional<U32> numeric_reference(U32View body) {
  uint64_t num = 0;
  auto accumulate = [&](uint64_t digit, uint64_t base) { num = std::min<uint64_t>(num * base + digit, 0x7FFFFFFF); };
  bool all_dec = std::all_of(body.begin(), body.end(), [](char32_t c) { return c >= '0' && c <= '9'; });
  if (all_dec) {
    for (char32_t c : body) accumulate(c - '0', 10);
  } else {
    if (body.size() < 2 || (body[0] != 'x' && body[0] != 'X')) return std::nullopt;
    for (char32_t c : body.substr(1)) {
      if (c >= '0' && c <= '9') accumulate(c - '0', 16);
      else if (c >= 'a' && c <= 'f') accumulate(c - 'a' + 10, 16);
      else if (c >= 'A' && c <= 'F') accumulate(c - 'A' + 10, 16);
      else return std::nullopt;  // html.unescape decodes a prefix and leaves ';' behind
    }
  }
  U32 value = unicode::html_numeric_reference(num);
  if (value.find(U';') != U32::npos) return std::nullopt;
  return value;
}

// ftfy.fixes.unescape_html: HTML_ENTITY_RE = &#?[0-9A-Za-z]{1,24};
U32 unescape_html(U32View s) {
  U32 out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    bool hash = j < s.size() && s[j] == '#';
    if (hash) ++j;
    size_t k = j;
    while (k < s.size() && k - j <= 24 && is_ascii_alnum(s[k])) ++k;
    if (k == j || k - j > 24 || k >= s.size() || s[k] != ';') {
      out.push_back(s[i++]);
      continue;
    }
    U32View body = s.substr(j, k - j);
    bool done = false;
    if (hash) {
      if (auto v = numeric_reference(body)) out += *v, done = true;
    } else {
      std::string name(body.begin(), body.end());  // ASCII by construction
      U32View value;
      if (unicode::html_entity(name, &value)) out += value, done = true;
    }
    if (!done) out.append(s.substr(i, k + 1 - i));
    i = k + 1;
  }
  return out;
}

// ftfy.fixes.remove_terminal_escapes: \033\[((?:\d|;)*)([a-zA-Z])
U32 remove_terminal_escapes(U32View s) {
  U32 out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == '[') {
      size_t k = i + 2;
      while (k < s.size() && (s[k] == ';' || has_prop(s[k], unicode::kReDigit))) ++k;
      if (k < s.size() && is_ascii_letter(s[k])) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

char32_t cp1252_sloppy(char32_t c) { return unicode::kCharmaps[1].high[c - 0x80]; }

U32 fix_c1_controls(U32View s) {
  U32 out(s);
  for (char32_t& c : out)
    if (c >= 0x80 && c <= 0x9F) c = cp1252_sloppy(c);
  return out;
}

U32 translate(U32View s, U32View (*map)(char32_t)) {
  U32 out;
  out.reserve(s.size());
  for (char32_t c : s) {
    U32View m = map(c);
    if (m.empty()) out.push_back(c);
    else out.append(m);
  }
  return out;
}

U32 uncurl_quotes(U32View s) {
  U32 out(s);
  for (char32_t& c : out) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
    else if (c >= 0x201C && c <= 0x201F) c = '"';
  }
  return out;
}

U32 fix_line_breaks(U32View s) {
  U32 out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out.push_back('\n');
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back('\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

U32 remove_control_chars(U32View s) {
  U32 out;
  out.reserve(s.size());
  for (char32_t c : s)
    if (!is_removed_control(c)) out.push_back(c);
  return out;
}

// ---------------------------------------------------------------------------------------------
// fix_encoding: byte-level helpers
// ---------------------------------------------------------------------------------------------
// A fixed-length byte pattern: one allowed byte set per position.
using ByteSet = std::array<bool, 256>;

ByteSet bytes_of(std::initializer_list<std::pair<int, int>> ranges) {
  ByteSet s{};
  for (auto [lo, hi] : ranges)
    for (int b = lo; b <= hi; ++b) s[size_t(b)] = true;
  return s;
}

using BytePattern = std::vector<ByteSet>;

bool matches_at(const Bytes& b, size_t i, const BytePattern& p) {
  if (i + p.size() > b.size()) return false;
  for (size_t k = 0; k < p.size(); ++k)
    if (!p[k][static_cast<unsigned char>(b[i + k])]) return false;
  return true;
}

// Length of the first alternative matching at i (Python regex alternation order), 0 if none.
size_t match_alternatives(const Bytes& b, size_t i, const std::vector<BytePattern>& alts) {
  for (const BytePattern& p : alts)
    if (matches_at(b, i, p)) return p.size();
  return 0;
}

// chardata.ALTERED_UTF8_RE
const std::vector<BytePattern>& altered_utf8() {
  static const std::vector<BytePattern> alts = [] {
    ByteSet sp = bytes_of({{0x20, 0x20}});
    ByteSet cont = bytes_of({{0x80, 0xBF}});
    ByteSet mid = bytes_of({{0x80, 0x84}, {0x86, 0x9F}, {0xA1, 0xBF}});
    ByteSet lead2 = bytes_of({{0xC2, 0xC3}, {0xC5, 0xC5}, {0xCE, 0xCE}, {0xD0, 0xD0}, {0xD9, 0xD9}});
    ByteSet f0 = bytes_of({{0xF0, 0xF0}});
    return std::vector<BytePattern>{
        {lead2, sp},
        {bytes_of({{0xE2, 0xE3}}), sp, mid},
        {bytes_of({{0xE0, 0xE3}}), mid, sp},
        {f0, sp, cont, cont},
        {f0, cont, sp, cont},
        {f0, cont, cont, sp},
    };
  }();
  return alts;
}

// chardata.LOSSY_UTF8_RE
const std::vector<BytePattern>& lossy_utf8() {
  static const std::vector<BytePattern> alts = [] {
    ByteSet sub = bytes_of({{0x1A, 0x1A}});
    ByteSet subq = bytes_of({{0x1A, 0x1A}, {'?', '?'}});
    ByteSet subc = bytes_of({{0x1A, 0x1A}, {0x80, 0xBF}});
    ByteSet subqc = bytes_of({{0x1A, 0x1A}, {'?', '?'}, {0x80, 0xBF}});
    ByteSet ed = bytes_of({{0xED, 0xED}});
    ByteSet hi_sur = bytes_of({{0xA0, 0xAF}});
    ByteSet lo_sur = bytes_of({{0xB0, 0xBF}});
    ByteSet lead3 = bytes_of({{0xE0, 0xEF}});
    ByteSet lead4 = bytes_of({{0xF0, 0xF4}});
    return std::vector<BytePattern>{
        {bytes_of({{0xC2, 0xDF}}), sub},
        {bytes_of({{0xC2, 0xC3}}), bytes_of({{'?', '?'}})},
        {ed, hi_sur, subq, ed, lo_sur, subqc},
        {ed, hi_sur, subqc, ed, lo_sur, subq},
        {lead3, subq, subc},
        {lead3, subc, subq},
        {lead4, subq, subc, subc},
        {lead4, subc, subq, subc},
        {lead4, subc, subc, subq},
        {sub},
    };
  }();
  return alts;
}

bool altered_utf8_search(const Bytes& b) {
  for (size_t i = 0; i < b.size(); ++i)
    if (match_alternatives(b, i, altered_utf8())) return true;
  return false;
}

bool starts_with_at(const Bytes& b, size_t i, std::string_view w) {
  return i + w.size() <= b.size() && b.compare(i, w.size(), w) == 0;
}

// fixes.restore_byte_a0
Bytes restore_byte_a0(const Bytes& in) {
  // A_GRAVE_WORD_RE: \xc3 (?! |quele|quela|quilo|s )  ->  \xc3\xa0 + space
  Bytes b;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\xC3' && i + 1 < in.size() && in[i + 1] == ' ') {
      size_t k = i + 2;
      bool excluded = starts_with_at(in, k, " ") || starts_with_at(in, k, "quele") ||
                      starts_with_at(in, k, "quela") || starts_with_at(in, k, "quilo") ||
                      starts_with_at(in, k, "s ");
      if (!excluded) {
        b += "\xC3\xA0 ";
        ++i;
        continue;
      }
    }
    b.push_back(in[i]);
  }
  Bytes out;
  for (size_t i = 0; i < b.size();) {
    size_t len = match_alternatives(b, i, altered_utf8());
    if (len == 0) {
      out.push_back(b[i++]);
      continue;
    }
    for (size_t k = 0; k < len; ++k) out.push_back(b[i + k] == ' ' ? '\xA0' : b[i + k]);
    i += len;
  }
  return out;
}

// fixes.replace_lossy_sequences
Bytes replace_lossy_sequences(const Bytes& b) {
  Bytes out;
  for (size_t i = 0; i < b.size();) {
    size_t len = match_alternatives(b, i, lossy_utf8());
    if (len == 0) {
      out.push_back(b[i++]);
    } else {
      out += "\xEF\xBF\xBD";
      i += len;
    }
  }
  return out;
}

// ftfy's "utf-8-variants" codec: UTF-8 plus CESU-8 surrogate pairs and Java's C0 80 for NUL.
std::optional<U32> decode_utf8_variants(const Bytes& b) {
  const size_t n = b.size();
  auto at_end = [&](size_t p) { return p == n || (p + 1 == n && b[p] == '\n'); };  // bytes `$`
  auto in = [&](size_t p, int lo, int hi) {
    return p < n && static_cast<unsigned char>(b[p]) >= lo && static_cast<unsigned char>(b[p]) <= hi;
  };
  U32 out;
  size_t i = 0;
  while (i < n) {
    // SPECIAL_BYTES_RE: \xc0(\x80|$) | CESU-8 | \xed([\xa0-\xbf]|$)([\x80-\xbf]|$)
    size_t p = i;
    for (; p < n; ++p) {
      if (b[p] == '\xC0' && (in(p + 1, 0x80, 0x80) || at_end(p + 1))) break;
      if (b[p] == '\xED' && (in(p + 1, 0xA0, 0xBF) || at_end(p + 1))) break;
    }
    auto plain = utf8_decode_strict(std::string_view(b).substr(i, p - i));
    if (!plain) return std::nullopt;
    out += *plain;
    if (p == n) break;
    if (b[p] == '\xC0') {
      if (n - p < 2) return std::nullopt;
      out.push_back(0);
      i = p + 2;
      continue;
    }
    // A surrogate: only a whole CESU-8 pair decodes.
    if (n - p < 6) return std::nullopt;
    bool cesu = in(p + 1, 0xA0, 0xAF) && in(p + 2, 0x80, 0xBF) && b[p + 3] == '\xED' &&
                in(p + 4, 0xB0, 0xBF) && (in(p + 5, 0x80, 0xBF) || at_end(p + 5));
    if (!cesu) return std::nullopt;
    auto byte = [&](size_t k) { return char32_t(static_cast<unsigned char>(b[p + k])); };
    out.push_back(((byte(1) & 0x0F) << 16) + ((byte(2) & 0x3F) << 10) + ((byte(4) & 0x0F) << 6) +
                  (byte(5) & 0x3F) + 0x10000);
    i = p + 6;
  }
  return out;
}

// chardata.possible_encoding + str.encode for one of the single-byte charmaps.
std::optional<Bytes> encode_charmap(U32View s, const unicode::Charmap& cm) {
  Bytes out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80 && !(cm.sloppy && c == 0x1A)) {
      out.push_back(char(c));
      continue;
    }
    if (cm.sloppy && c == kReplacement) {
      out.push_back('\x1A');
      continue;
    }
    if (c > 0xFFFF) return std::nullopt;
    const char16_t* hit = std::find(cm.high, cm.high + 128, char16_t(c));
    if (hit == cm.high + 128) return std::nullopt;
    out.push_back(char(0x80 + (hit - cm.high)));
  }
  return out;
}

bool is_bad(U32View s) {
  auto branches = unicode::badness_branches();
  for (size_t start = 0; start < s.size(); ++start) {
    for (const unicode::BadBranch& br : branches) {
      if (br.anchored && start != 0) continue;
      if (start + br.len > s.size()) continue;
      bool ok = true;
      for (size_t k = 0; k < br.len && ok; ++k) ok = unicode::set_contains(br.set[k], s[start + k]);
      if (ok) return true;
    }
  }
  return false;
}

U32 fix_encoding(U32View s);

// fixes.decode_inconsistent_utf8 over UTF8_DETECTOR_RE; returns nullopt when nothing matches.
std::optional<U32> decode_inconsistent_utf8(U32View s) {
  const int* clue = unicode::kUtf8ClueSets;
  auto in_set = [&](size_t p, int set) { return p < s.size() && unicode::set_contains(set, s[p]); };
  auto step = [&](size_t q) -> size_t {  // one ( f2 c | f3 c c | f4 c c c ) at q, 0 if none
    for (size_t len = 2; len <= 4; ++len) {
      if (!in_set(q, clue[len - 2])) continue;
      bool ok = true;
      for (size_t k = 1; k < len && ok; ++k) ok = in_set(q + k, clue[3]);
      if (ok) return len;
    }
    return 0;
  };
  U32 out;
  bool found = false;
  for (size_t pos = 0; pos < s.size();) {
    size_t q = pos;
    if (pos == 0 || !unicode::set_contains(clue[4], s[pos - 1]))
      while (size_t len = step(q)) q += len;
    if (q == pos) {
      out.push_back(s[pos++]);
      continue;
    }
    found = true;
    U32View sub = s.substr(pos, q - pos);
    if (sub.size() < s.size() && is_bad(sub)) out += fix_encoding(sub);
    else out.append(sub);
    pos = q;
  }
  if (!found) return std::nullopt;
  return out;
}

// ftfy._fix_encoding_one_step_and_explain with the default config.
U32 fix_encoding_step(U32View s) {
  if (s.empty()) return U32(s);
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; })) return U32(s);
  if (!is_bad(s)) return U32(s);
  bool latin1_possible = false;
  for (int e = 0; e < unicode::kNumCharmaps; ++e) {
    const unicode::Charmap& cm = unicode::kCharmaps[e];
    std::optional<Bytes> bytes = encode_charmap(s, cm);
    if (!bytes) continue;
    if (e == 0) latin1_possible = true;
    if (std::string_view(cm.name) != "macroman" && altered_utf8_search(*bytes))
      bytes = restore_byte_a0(*bytes);
    if (cm.sloppy) bytes = replace_lossy_sequences(*bytes);
    bool variants = bytes->find('\xED') != Bytes::npos || bytes->find('\xC0') != Bytes::npos;
    std::optional<U32> fixed = variants ? decode_utf8_variants(*bytes) : utf8_decode_strict(*bytes);
    if (fixed) return *fixed;
  }
  if (auto fixed = decode_inconsistent_utf8(s); fixed && *fixed != s) return *fixed;
  bool has_c1 = std::any_of(s.begin(), s.end(), [](char32_t c) { return c >= 0x80 && c <= 0x9F; });
  if (latin1_possible) {
    // latin-1 -> strict windows-1252, which has no characters for 81 8D 8F 90 9D.
    bool undefined = std::any_of(s.begin(), s.end(), [](char32_t c) {
      return c == 0x81 || c == 0x8D || c == 0x8F || c == 0x90 || c == 0x9D;
    });
    if (!undefined && has_c1) return fix_c1_controls(s);
  }
  if (has_c1) return fix_c1_controls(s);
  return U32(s);
}

// ftfy.fix_encoding: steps until nothing changes (capped, like fix_segment's rounds).
U32 fix_encoding(U32View s) {
  U32 text(s);
  for (int round = 0; round < kMaxRounds; ++round) {
    U32 next = fix_encoding_step(text);
    if (next == text) break;
    text = std::move(next);
  }
  return text;
}

// ftfy.fix_and_explain on one segment.
U32 fix_segment(U32View segment, bool unescape) {
  U32 text(segment);
  for (int round = 0; round < kMaxRounds; ++round) {
    U32 orig = text;
    if (unescape) text = unescape_html(text);
    text = fix_encoding(text);
    text = fix_c1_controls(text);
    text = translate(text, unicode::ftfy_ligature);
    text = translate(text, unicode::ftfy_width);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = nfc_normalize(text);
    if (text == orig) break;
  }
  return text;
}

}  // namespace

std::u32string utf8_decode(std::string_view s) {
  U32 out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    int len = utf8_sequence(p, s.size(), i, &cp);
    if (len > 0) {
      out.push_back(cp);
      i += size_t(len);
    } else {
      out.push_back(kReplacement);
      i += size_t(-len);
    }
  }
  return out;
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80) {
      out.push_back(char(c));
    } else if (c < 0x800) {
      out.push_back(char(0xC0 | (c >> 6)));
      out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(char(0xE0 | (c >> 12)));
      out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(char(0x80 | (c & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (c >> 18)));
      out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(char(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

std::u32string nfc_normalize(std::u32string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0xC0; })) return U32(s);
  // Canonical decomposition, then a stable sort of each run of non-starters by class.
  U32 d;
  d.reserve(s.size() + 8);
  for (char32_t c : s) decompose_into(c, d);
  std::vector<uint8_t> cc(d.size());
  for (size_t i = 0; i < d.size(); ++i) cc[i] = unicode::combining_class(d[i]);
  for (size_t i = 1; i < d.size(); ++i) {
    for (size_t j = i; j > 0 && cc[j] != 0 && cc[j - 1] > cc[j]; --j) {
      std::swap(d[j], d[j - 1]);
      std::swap(cc[j], cc[j - 1]);
    }
  }
  // Canonical composition: a character joins the last starter unless something between
  // blocks it (a starter, or a non-starter of the same or a higher class).
  U32 out;
  out.reserve(d.size());
  size_t starter = SIZE_MAX;
  int last_cc = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    char32_t c = d[i];
    int c_cc = cc[i];
    if (starter != SIZE_MAX) {
      bool adjacent = out.size() == starter + 1;
      if (adjacent || (last_cc != 0 && last_cc < c_cc)) {
        if (char32_t comp = compose_pair(out[starter], c)) {
          out[starter] = comp;
          continue;
        }
      }
    }
    if (c_cc == 0) starter = out.size();
    last_cc = c_cc;
    out.push_back(c);
  }
  return out;
}

std::u32string python_lower(std::u32string_view s) {
  U32 out;
  out.reserve(s.size());
  char32_t buf[3];
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 0x3A3) {
      out.push_back(final_sigma(s, i) ? 0x3C2 : 0x3C3);
      continue;
    }
    int n = unicode::to_lower(s[i], buf);
    out.append(buf, size_t(n));
  }
  return out;
}

std::u32string whitespace_clean(std::u32string_view s) {
  U32 collapsed;
  collapsed.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (has_prop(s[i], unicode::kRegexSpace)) {
      while (i < s.size() && has_prop(s[i], unicode::kRegexSpace)) ++i;
      collapsed.push_back(' ');
    } else {
      collapsed.push_back(s[i++]);
    }
  }
  size_t b = 0, e = collapsed.size();
  while (b < e && has_prop(collapsed[b], unicode::kPySpace)) ++b;
  while (e > b && has_prop(collapsed[e - 1], unicode::kPySpace)) --e;
  return collapsed.substr(b, e - b);
}

std::u32string ftfy_fix_text(std::u32string_view s) {
  constexpr size_t kMaxDecodeLength = 1000000;
  U32 out;
  bool unescape = true;  // "auto" until a segment contains '<'
  for (size_t pos = 0; pos < s.size();) {
    size_t brk = s.find(U'\n', pos);
    brk = brk == U32View::npos ? s.size() : brk + 1;
    if (brk - pos > kMaxDecodeLength) brk = pos + kMaxDecodeLength;
    U32View segment = s.substr(pos, brk - pos);
    if (unescape && segment.find(U'<') != U32View::npos) unescape = false;
    out += fix_segment(segment, unescape);
    pos = brk;
  }
  return out;
}

std::u32string ftfy_fix_encoding(std::u32string_view s) { return fix_encoding(s); }

bool ftfy_is_bad(std::u32string_view s) { return is_bad(s); }

std::u32string clip_normalize(std::u32string_view s) {
  return python_lower(whitespace_clean(ftfy_fix_text(s)));
}

}  // namespace sdpal
