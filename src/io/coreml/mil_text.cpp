#include "io/coreml/mil_text.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/mapped_file.h"

namespace sdpal::coreml {

namespace {

enum class Tok : uint8_t { kEnd, kIdent, kNumber, kString, kPunct, kArrow };

struct Token {
  Tok kind = Tok::kEnd;
  std::string_view text;  // kString: the quoted text with its quotes
  int line = 0;
  int col = 0;
};

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9') || c == '@' || c == '.'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool hexdigit(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// One literal element before it is encoded into the tensor's dtype.
struct Lit {
  enum Kind : uint8_t { kInt, kFloat, kBool, kString } kind = kInt;
  bool neg = false;
  uint64_t mag = 0;  // kInt magnitude
  double f = 0;      // kFloat
  bool b = false;
  std::string s;
};

constexpr int kMaxDepth = 64;

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  MilProgram program() {
    MilProgram p;
    p.source = source_;
    expect_ident("program");
    expect("(");
    const Token v = take();
    if (v.kind != Tok::kNumber) error(v, "expected a program version");
    p.version = std::string(v.text);
    expect(")");
    if (is("[")) p.attributes = attributes();
    expect("{");
    while (!is("}")) p.functions.push_back(function());
    expect("}");
    if (peek().kind != Tok::kEnd) error(peek(), "unexpected text after the program");
    return p;
  }

 private:
  // ---- lexer ----
  void skip_space() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
        ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
        ++pos_;
      } else if (c == '#' || (c == '/' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '/')) {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  Token lex() {
    skip_space();
    Token t;
    t.line = line_;
    t.col = int(pos_ - line_start_) + 1;
    if (pos_ >= s_.size()) return t;
    const size_t b = pos_;
    const char c = s_[pos_];
    auto at = [&](size_t i) { return i < s_.size() ? s_[i] : '\0'; };
    if (ident_start(c)) {
      while (pos_ < s_.size() && ident_char(s_[pos_])) ++pos_;
      t.kind = Tok::kIdent;
    } else if (c == '"') {
      ++pos_;
      while (pos_ < s_.size() && s_[pos_] != '"') {
        if (s_[pos_] == '\\') ++pos_;
        if (pos_ < s_.size() && s_[pos_] == '\n') error(t, "unterminated string");
        ++pos_;
      }
      if (pos_ >= s_.size()) error(t, "unterminated string");
      ++pos_;
      t.kind = Tok::kString;
    } else if (c == '-' && at(pos_ + 1) == '>') {
      pos_ += 2;
      t.kind = Tok::kArrow;
    } else if (digit(c) || ((c == '-' || c == '+') && (digit(at(pos_ + 1)) || at(pos_ + 1) == '.' || ident_start(at(pos_ + 1))))) {
      if (c == '-' || c == '+') ++pos_;
      if (ident_start(s_[pos_])) {  // -inf, -nan
        while (pos_ < s_.size() && ident_char(s_[pos_])) ++pos_;
      } else if (s_[pos_] == '0' && (at(pos_ + 1) == 'x' || at(pos_ + 1) == 'X')) {
        pos_ += 2;
        while (pos_ < s_.size() && (hexdigit(s_[pos_]) || s_[pos_] == '.')) ++pos_;
        if (at(pos_) == 'p' || at(pos_) == 'P') {
          ++pos_;
          if (at(pos_) == '+' || at(pos_) == '-') ++pos_;
          while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
        }
      } else {
        while (pos_ < s_.size() && (digit(s_[pos_]) || s_[pos_] == '.')) ++pos_;
        if (at(pos_) == 'e' || at(pos_) == 'E') {
          ++pos_;
          if (at(pos_) == '+' || at(pos_) == '-') ++pos_;
          while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
        }
      }
      t.kind = Tok::kNumber;
    } else if (std::strchr("()[]{}<>,=;?*", c)) {
      ++pos_;
      t.kind = Tok::kPunct;
    } else {
      error(t, std::string("unexpected character '") + (c >= 32 && c < 127 ? std::string(1, c) : "\\x" + hex(uint8_t(c))) + "'");
    }
    t.text = s_.substr(b, pos_ - b);
    return t;
  }

  static std::string hex(uint8_t v) {
    const char* d = "0123456789abcdef";
    return {d[v >> 4], d[v & 15]};
  }

  const Token& peek(int k = 0) {
    while (nbuf_ <= k) buf_[(head_ + nbuf_++) % 3] = lex();
    return buf_[(head_ + k) % 3];
  }
  Token take() {
    const Token t = peek();
    head_ = (head_ + 1) % 3;
    --nbuf_;
    return t;
  }
  bool is(std::string_view p, int k = 0) {
    const Token& t = peek(k);
    return (t.kind == Tok::kPunct || t.kind == Tok::kArrow) && t.text == p;
  }
  bool is_ident(std::string_view w, int k = 0) {
    const Token& t = peek(k);
    return t.kind == Tok::kIdent && t.text == w;
  }
  void expect(std::string_view p) {
    if (!is(p)) error(peek(), "expected '" + std::string(p) + "'");
    take();
  }
  void expect_ident(std::string_view w) {
    if (!is_ident(w)) error(peek(), "expected '" + std::string(w) + "'");
    take();
  }
  std::string ident(const char* what) {
    const Token t = take();
    if (t.kind != Tok::kIdent) error(t, std::string("expected ") + what);
    return std::string(t.text);
  }

  [[noreturn]] void error(const Token& t, const std::string& msg) {
    std::string found = t.kind == Tok::kEnd ? "end of file" : "'" + std::string(t.text.substr(0, 40)) + "'";
    fail(ErrorCode::kFormat, source_ + ":" + std::to_string(t.line) + ":" + std::to_string(t.col) + ": " + msg +
                                 " (found " + found + ")");
  }
  [[noreturn]] void error_at(SourceLoc l, ErrorCode code, const std::string& msg) {
    fail(code, source_ + ":" + std::to_string(l.line) + ":" + std::to_string(l.col) + ": " + msg);
  }
  static SourceLoc loc(const Token& t) { return {t.line, t.col}; }

  void enter() {
    if (++depth_ > kMaxDepth) error(peek(), "nesting deeper than " + std::to_string(kMaxDepth));
  }
  void leave() { --depth_; }

  // ---- types ----
  bool is_type_start(int k = 0) {
    const Token& t = peek(k);
    if (t.kind != Tok::kIdent) return false;
    if (t.text == "tensor" || t.text == "list" || t.text == "tuple" || t.text == "dict" || t.text == "state")
      return is("<", k + 1);
    return mil_dtype_from_name(t.text).has_value() && is("(", k + 1);
  }

  MilType type() {
    enter();
    const Token t = take();
    if (t.kind != Tok::kIdent) error(t, "expected a type");
    MilType r;
    if (t.text == "tensor") {
      expect("<");
      r.dtype = dtype();
      expect(",");
      if (is("*")) {
        take();
        r.unknown_rank = true;
      } else {
        expect("[");
        while (!is("]")) {
          const Token d = take();
          if (d.kind == Tok::kNumber) {
            int64_t v = -1;
            auto [p, ec] = std::from_chars(d.text.data(), d.text.data() + d.text.size(), v);
            if (ec != std::errc() || p != d.text.data() + d.text.size() || v < 0) error(d, "bad dimension");
            r.shape.push_back(v);
          } else if (d.kind == Tok::kIdent || (d.kind == Tok::kPunct && d.text == "?")) {
            r.shape.push_back(kUnknownDim);  // symbolic or unknown size
          } else {
            error(d, "expected a dimension");
          }
          if (!is("]")) expect(",");
        }
        expect("]");
      }
      expect(">");
    } else if (t.text == "list") {
      r.kind = MilType::Kind::kList;
      expect("<");
      r.elements.push_back(type());
      if (is(",")) {
        take();
        const Token d = take();
        if (d.kind == Tok::kNumber) {
          auto [p, ec] = std::from_chars(d.text.data(), d.text.data() + d.text.size(), r.list_length);
          if (ec != std::errc() || r.list_length < 0) error(d, "bad list length");
        } else if (d.kind != Tok::kIdent && !(d.kind == Tok::kPunct && d.text == "?")) {
          error(d, "expected a list length");
        }
      }
      expect(">");
    } else if (t.text == "tuple" || t.text == "dict" || t.text == "state") {
      r.kind = t.text == "tuple" ? MilType::Kind::kTuple : t.text == "dict" ? MilType::Kind::kDict : MilType::Kind::kState;
      expect("<");
      while (!is(">")) {
        r.elements.push_back(type());
        if (!is(">")) expect(",");
      }
      expect(">");
      if ((r.kind == MilType::Kind::kDict && r.elements.size() != 2) || (r.kind == MilType::Kind::kState && r.elements.size() != 1))
        error(t, "wrong number of type parameters");
    } else if (auto dt = mil_dtype_from_name(t.text)) {
      r.dtype = *dt;  // a scalar: `int32`, `string`
    } else {
      error(t, "unknown type");
    }
    leave();
    return r;
  }

  MilDType dtype() {
    const Token t = take();
    if (t.kind != Tok::kIdent) error(t, "expected an element type");
    auto dt = mil_dtype_from_name(t.text);
    if (!dt) error(t, "unknown element type");
    return *dt;
  }

  // ---- literals ----
  Lit literal() {
    const Token t = take();
    Lit l;
    if (t.kind == Tok::kString) {
      l.kind = Lit::kString;
      l.s = unquote(t);
    } else if (t.kind == Tok::kIdent && (t.text == "true" || t.text == "false")) {
      l.kind = Lit::kBool;
      l.b = t.text == "true";
    } else if (t.kind == Tok::kIdent && (t.text == "inf" || t.text == "nan")) {
      l.kind = Lit::kFloat;
      l.f = t.text == "inf" ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    } else if (t.kind == Tok::kNumber) {
      number(t, l);
    } else {
      error(t, "expected a literal");
    }
    return l;
  }

  void number(const Token& t, Lit& l) {
    std::string_view s = t.text;
    l.neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+') s.remove_prefix(1);
    if (s == "inf" || s == "nan") {
      l.kind = Lit::kFloat;
      l.f = s == "inf" ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
      if (l.neg) l.f = -l.f;
      return;
    }
    const bool hexnum = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    const bool isfloat = hexnum ? s.find_first_of(".pP") != std::string_view::npos
                                : s.find_first_of(".eE") != std::string_view::npos;
    if (!isfloat) {
      std::string_view d = hexnum ? s.substr(2) : s;
      auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), l.mag, hexnum ? 16 : 10);
      if (ec != std::errc() || p != d.data() + d.size()) error(t, "bad integer literal");
      l.kind = Lit::kInt;
      return;
    }
    std::string_view d = hexnum ? s.substr(2) : s;
    if (d.empty() || d[0] == '-' || d[0] == '+') error(t, "bad number");
    double v = 0;
    auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), v,
                                   hexnum ? std::chars_format::hex : std::chars_format::general);
    if (p != d.data() + d.size() || ec != std::errc()) error(t, "bad or out-of-range number");
    l.kind = Lit::kFloat;
    l.f = l.neg ? -v : v;
  }

  std::string unquote(const Token& t) {
    std::string r;
    const std::string_view q = t.text.substr(1, t.text.size() - 2);
    r.reserve(q.size());
    for (size_t i = 0; i < q.size(); ++i) {
      char c = q[i];
      if (c == '\\' && i + 1 < q.size()) {
        c = q[++i];
        if (c == 'n') c = '\n';
        else if (c == 't') c = '\t';
        else if (c == 'r') c = '\r';
        else if (c == '0') c = '\0';
      }
      r += c;
    }
    return r;
  }

  // A bracketed list, flattened row-major into `out`; `shape` receives its nesting shape.
  // Ragged lists (sublists of different shapes, or mixed scalars and lists) are errors.
  void nested_list(std::vector<Lit>& out, Shape& shape) {
    enter();
    const Token open = peek();
    expect("[");
    int64_t count = 0;
    Shape child;
    bool lists = false;
    while (!is("]")) {
      if (is("[")) {
        Shape s;
        nested_list(out, s);
        if ((count > 0 && (!lists || s != child))) error(open, "ragged list literal");
        child = s;
        lists = true;
      } else {
        if (lists) error(open, "ragged list literal");
        out.push_back(literal());
      }
      ++count;
      if (!is("]")) expect(",");
    }
    take();
    shape.assign(1, count);
    shape.insert(shape.end(), child.begin(), child.end());
    leave();
  }

  // The literal of a tensor type: one bare element for a scalar, else a (possibly nested) list.
  // Unknown dimensions (allowed inside tuples and dicts, e.g. FlexibleShapeInformation) take the
  // literal's nesting shape.
  void tensor_literal(MilValue& v, const Token& start) {
    MilType& t = v.type;
    if (t.unknown_rank) error(start, "a literal needs a known rank, not " + t.str());
    const bool bracketed = is("[");
    std::vector<Lit> lits;
    Shape lit_shape;
    if (bracketed) nested_list(lits, lit_shape);
    else lits.push_back(literal());
    if (t.shape.empty() && bracketed) error(start, "scalar literal written as a list for " + t.str());
    if (!t.shape.empty() && !bracketed) error(start, "tensor literal of " + t.str() + " must be a list");
    if (!t.has_static_shape()) {
      if (lit_shape.size() != t.shape.size()) error(start, "a literal needs a static shape, not " + t.str());
      for (size_t k = 0; k < t.shape.size(); ++k)
        if (t.shape[k] >= 0 && t.shape[k] != lit_shape[k]) error(start, "literal of shape " + shape_str(lit_shape) + " for " + t.str());
      t.shape = lit_shape;
    }
    encode(v, lits, loc(start));
  }

  // A value of type `t` written without its type: the body of `T(...)`, or an item of a tuple,
  // list or dict. An item may also carry its own type (`tensor<int32, [2]>([1, 2])`).
  MilValue bare_value(const MilType& t, const Token* at = nullptr) {
    enter();
    const Token start = at ? *at : peek();  // errors point at the literal's type when it has one
    MilValue v;
    if (is_type_start()) {
      v = typed_value();
      if (v.type.kind != t.kind || (t.is_tensor() && v.type.dtype != t.dtype))
        error(start, "value of type " + v.type.str() + " where " + t.str() + " is expected");
      leave();
      return v;
    }
    v.type = t;
    switch (t.kind) {
      case MilType::Kind::kTensor:
        tensor_literal(v, start);
        break;
      case MilType::Kind::kList:
        v.kind = MilValue::Kind::kList;
        expect("[");
        while (!is("]")) {
          v.items.push_back(bare_value(t.elements[0]));
          if (!is("]")) expect(",");
        }
        take();
        if (t.list_length >= 0 && int64_t(v.items.size()) != t.list_length)
          error(start, std::to_string(v.items.size()) + " items for " + t.str());
        v.type.list_length = int64_t(v.items.size());
        break;
      case MilType::Kind::kTuple:
        v.kind = MilValue::Kind::kTuple;
        expect("(");
        for (size_t i = 0; i < t.elements.size(); ++i) {
          if (i) expect(",");
          v.items.push_back(bare_value(t.elements[i]));
        }
        expect(")");
        break;
      case MilType::Kind::kDict:  // {{k, v}, {k, v}}
        v.kind = MilValue::Kind::kDict;
        expect("{");
        while (!is("}")) {
          expect("{");
          v.items.push_back(bare_value(t.elements[0]));
          expect(",");
          v.items.push_back(bare_value(t.elements[1]));
          expect("}");
          if (!is("}")) expect(",");
        }
        take();
        break;
      case MilType::Kind::kState:
        error_at(loc(start), ErrorCode::kUnsupported, "literals of type " + t.str() + " are not supported");
    }
    leave();
    return v;
  }

  // ---- values ----
  MilValue typed_value() {
    enter();
    const Token start = peek();
    const MilType t = type();
    expect("(");
    MilValue v;
    if (is_ident("BLOBFILE")) {
      v.type = t;
      blobfile(v, start);
    } else {
      v = bare_value(t, &start);
    }
    expect(")");
    leave();
    return v;
  }

  void blobfile(MilValue& v, const Token& start) {
    take();
    expect("(");
    bool have_path = false, have_offset = false;
    while (!is(")")) {
      const Token key = peek();
      const std::string k = ident("'path' or 'offset'");
      expect("=");
      const MilValue a = typed_value();
      if (k == "path" && !have_path) {
        v.blob.path = a.scalar_string();
        have_path = true;
      } else if (k == "offset" && !have_offset) {
        if (a.type.dtype != MilDType::kUInt64 && a.type.dtype != MilDType::kInt64 && a.type.dtype != MilDType::kUInt32 &&
            a.type.dtype != MilDType::kInt32)
          error(key, "BLOBFILE offset must be an integer");
        const int64_t off = a.scalar_int();
        if (off < 0 && a.type.dtype != MilDType::kUInt64) error(key, "negative BLOBFILE offset");
        v.blob.offset = uint64_t(off);
        have_offset = true;
      } else {
        error(key, "unexpected BLOBFILE argument");
      }
      if (!is(")")) expect(",");
    }
    take();
    if (!have_path || !have_offset) error(start, "BLOBFILE needs a path and an offset");
    if (v.type.kind != MilType::Kind::kTensor || v.type.numel() < 0 || v.type.dtype == MilDType::kString)
      error(start, "BLOBFILE value needs a static numeric tensor type, not " + v.type.str());
    v.kind = MilValue::Kind::kBlob;
  }

  void encode(MilValue& v, const std::vector<Lit>& lits, SourceLoc at) {
    const MilDType dt = v.type.dtype;
    const int64_t n = v.type.numel();
    if (int64_t(lits.size()) != n)
      error_at(at, ErrorCode::kFormat, std::to_string(lits.size()) + " values for " + v.type.str() + " (" + std::to_string(n) + " elements)");
    if (dt == MilDType::kString) {
      for (const Lit& l : lits) {
        if (l.kind != Lit::kString) error_at(at, ErrorCode::kFormat, "non-string value in " + v.type.str());
        v.strings.push_back(l.s);
      }
      return;
    }
    const int bits = mil_dtype_bits(dt);
    v.data.assign(size_t(mil_packed_nbytes(dt, uint64_t(n))), 0);
    for (size_t i = 0; i < lits.size(); ++i) {
      const Lit& l = lits[i];
      uint64_t raw = 0;
      if (dt == MilDType::kBool) {
        if (l.kind != Lit::kBool) error_at(at, ErrorCode::kFormat, "non-bool value in " + v.type.str());
        raw = l.b;
      } else if (mil_dtype_is_float(dt)) {
        if (l.kind != Lit::kFloat && l.kind != Lit::kInt) error_at(at, ErrorCode::kFormat, "non-numeric value in " + v.type.str());
        const double d = l.kind == Lit::kFloat ? l.f : (l.neg ? -double(l.mag) : double(l.mag));
        if (dt == MilDType::kFp16) raw = f32_to_f16(float(d));
        else if (dt == MilDType::kBf16) raw = f32_to_bf16(float(d));
        else if (dt == MilDType::kFp32) { float f = float(d); std::memcpy(&raw, &f, 4); }
        else if (dt == MilDType::kFp64) std::memcpy(&raw, &d, 8);
        else error_at(at, ErrorCode::kUnsupported, std::string("literals of ") + mil_dtype_name(dt) + " are not supported");
      } else {
        if (l.kind != Lit::kInt) error_at(at, ErrorCode::kFormat, "non-integer value in " + v.type.str());
        const bool sgn = mil_dtype_is_signed(dt);
        const uint64_t max = bits == 64 ? (sgn ? uint64_t(INT64_MAX) : UINT64_MAX) : (sgn ? (uint64_t(1) << (bits - 1)) - 1 : (uint64_t(1) << bits) - 1);
        const uint64_t min_mag = sgn ? (bits == 64 ? uint64_t(1) << 63 : uint64_t(1) << (bits - 1)) : 0;
        if ((l.neg && l.mag > min_mag) || (!l.neg && l.mag > max))
          error_at(at, ErrorCode::kFormat, "value " + std::string(l.neg ? "-" : "") + std::to_string(l.mag) + " out of range for " + mil_dtype_name(dt));
        raw = l.neg ? uint64_t(0) - l.mag : l.mag;
      }
      if (bits < 8) {
        raw &= (1u << bits) - 1;
        const uint64_t bit = uint64_t(i) * uint64_t(bits);
        v.data[bit >> 3] |= uint8_t(raw << (bit & 7));
        if ((bit & 7) + uint64_t(bits) > 8) v.data[(bit >> 3) + 1] |= uint8_t(raw >> (8 - (bit & 7)));
      } else {
        std::memcpy(v.data.data() + i * size_t(bits / 8), &raw, size_t(bits / 8));  // little-endian host
      }
    }
  }

  std::vector<MilAttribute> attributes() {
    expect("[");
    std::vector<MilAttribute> r;
    while (!is("]")) {
      MilAttribute a;
      const Token t = peek();
      a.name = ident("an attribute name");
      expect("=");
      if (!is_type_start()) error(peek(), "attribute '" + a.name + "' needs a typed literal value");
      a.value = typed_value();
      for (const auto& o : r)
        if (o.name == a.name) error(t, "attribute '" + a.name + "' given twice");
      r.push_back(std::move(a));
      if (!is("]")) expect(",");
    }
    take();
    return r;
  }

  MilBinding binding() {
    MilBinding b;
    if (is_type_start()) {
      b.value = typed_value();
    } else {
      b.name = ident("a variable or a typed literal");
    }
    return b;
  }

  // ---- program structure ----
  MilFunction function() {
    const Token f = peek();
    expect_ident("func");
    MilFunction fn;
    fn.loc = loc(f);
    fn.name = ident("a function name");
    if (is("<")) {
      take();
      fn.opset = ident("an opset name");
      expect(">");
    }
    expect("(");
    while (!is(")")) {
      MilNamedType in;
      in.type = type();
      in.name = ident("an input name");
      fn.inputs.push_back(std::move(in));
      if (!is(")")) expect(",");
    }
    expect(")");
    if (is("[")) fn.attributes = attributes();  // e.g. FlexibleShapeInformation
    expect("{");
    while (!is("}")) fn.block.ops.push_back(op());
    expect("}");
    expect("->");
    expect("(");
    while (!is(")")) {
      fn.block.outputs.push_back(ident("an output name"));
      if (!is(")")) expect(",");
    }
    expect(")");
    expect(";");
    return fn;
  }

  MilOp op() {
    MilOp op;
    op.loc = loc(peek());
    for (;;) {
      MilNamedType out;
      out.type = type();
      out.name = ident("an output variable name");
      op.outputs.push_back(std::move(out));
      if (!is(",")) break;
      take();
    }
    expect("=");
    op.type = ident("an operation name");
    expect("(");
    while (!is(")")) {
      MilArgument a;
      const Token t = peek();
      a.name = ident("an argument name");
      expect("=");
      if (is("(")) {  // tuple of bindings
        take();
        while (!is(")")) {
          a.bindings.push_back(binding());
          if (!is(")")) expect(",");
        }
        take();
      } else {
        a.bindings.push_back(binding());
      }
      for (const auto& o : op.inputs)
        if (o.name == a.name) error(t, "argument '" + a.name + "' given twice");
      op.inputs.push_back(std::move(a));
      if (!is(")")) expect(",");
    }
    take();
    if (is("[")) op.attributes = attributes();
    if (is("{")) error_at(loc(peek()), ErrorCode::kUnsupported, "nested blocks in MIL text are not supported");
    expect(";");
    return op;
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
  Token buf_[3];
  int head_ = 0;
  int nbuf_ = 0;
  int depth_ = 0;
};

}  // namespace

MilProgram parse_mil_text(std::string_view text, const std::string& source) {
  Parser p(text, source);
  return p.program();
}

MilProgram read_mil_text_file(const std::string& path) {
  auto f = MappedFile::open(path);
  MilProgram p = parse_mil_text(std::string_view(reinterpret_cast<const char*>(f->data()), f->size()), path);
  validate(p);
  return p;
}

}  // namespace sdpal::coreml
