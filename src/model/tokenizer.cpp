// CLIP BPE tokenizer; see tokenizer.h for the reference behaviour it reproduces.
#include "model/tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "model/text_normalize.h"
#include "model/unicode_data.h"

namespace sdpal {

namespace {

constexpr size_t kClipMerges = 49152 - 256 - 2;  // merges CLIP uses (lines 1..48894)
constexpr int kDefaultMaxLength = 77;
constexpr size_t kCacheLimit = 1 << 16;         // words; cleared when full
const std::string kBos = "<|startoftext|>";
const std::string kEos = "<|endoftext|>";

struct AddedToken {
  std::u32string content;
  std::string utf8;
  int32_t id = -1;
  bool lstrip = false, rstrip = false;
};

// GPT-2's reversible byte -> printable code point table (bytes_to_unicode), in its dict order.
std::vector<std::pair<int, char32_t>> byte_alphabet() {
  std::vector<std::pair<int, char32_t>> out;
  std::vector<bool> printable(256, false);
  for (int b = 0; b < 256; ++b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
      printable[size_t(b)] = true;
      out.emplace_back(b, char32_t(b));
    }
  }
  char32_t next = 256;
  for (int b = 0; b < 256; ++b)
    if (!printable[size_t(b)]) out.emplace_back(b, next++);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, "cannot open tokenizer file " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(ErrorCode::kIo, "cannot read tokenizer file " + path);
  return ss.str();
}

std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(ErrorCode::kIo, "cannot open " + path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      fail(ErrorCode::kFormat, path + ": not a readable gzip file (" + msg + ")");
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > (256u << 20)) {
      gzclose(f);
      fail(ErrorCode::kFormat, path + ": decompresses to more than 256 MiB");
    }
  }
  gzclose(f);
  return out;
}

bool is_py_space(char32_t c) { return (unicode::props(c) & unicode::kPySpace) != 0; }

// Python str.split() with no argument, on one line.
std::vector<std::string> split_whitespace(std::string_view line) {
  std::u32string u = utf8_decode(line);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < u.size()) {
    while (i < u.size() && is_py_space(u[i])) ++i;
    size_t j = i;
    while (j < u.size() && !is_py_space(u[j])) ++j;
    if (j > i) out.push_back(utf8_encode(std::u32string_view(u).substr(i, j - i)));
    i = j;
  }
  return out;
}

bool valid_utf8(std::string_view s) { return utf8_encode(utf8_decode(s)) == s; }

using MergeList = std::vector<std::pair<std::string, std::string>>;

// transformers: read().strip().split("\n")[1:48895], each line split on whitespace. Line 0 is
// the header, whatever it says. Unlike Python we reject lines that are not two symbols.
MergeList parse_merges(std::string_view text, const std::string& path) {
  std::u32string u = utf8_decode(text);
  if (utf8_encode(u) != text) fail(ErrorCode::kFormat, path + ": not UTF-8 text");
  size_t b = 0, e = u.size();
  while (b < e && is_py_space(u[b])) ++b;
  while (e > b && is_py_space(u[e - 1])) --e;
  std::string stripped = utf8_encode(std::u32string_view(u).substr(b, e - b));
  MergeList merges;
  size_t pos = stripped.find('\n');
  for (size_t line_no = 2; pos != std::string::npos && merges.size() < kClipMerges; ++line_no) {
    size_t end = std::min(stripped.find('\n', pos + 1), stripped.size());
    std::string_view line = std::string_view(stripped).substr(pos + 1, end - pos - 1);
    std::vector<std::string> parts = split_whitespace(line);
    if (parts.size() != 2)
      fail(ErrorCode::kFormat, path + ": line " + std::to_string(line_no) + " is not a merge of two symbols");
    merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
    pos = end < stripped.size() ? end : std::string::npos;
  }
  if (merges.empty()) fail(ErrorCode::kFormat, path + ": no merges after the header line");
  return merges;
}

}  // namespace

struct ClipTokenizer::Impl {
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<std::string, int32_t> ranks;  // "first second" -> merge rank
  std::vector<AddedToken> added;                   // split out of the raw text
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  int max_length = kDefaultMaxLength;
  std::string byte_encoder[256];

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache;

  Impl() {
    for (auto [b, cp] : byte_alphabet()) byte_encoder[b] = utf8_encode(std::u32string(1, cp));
  }

  void set_merges(const MergeList& merges) {
    ranks.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i)
      ranks[merges[i].first + " " + merges[i].second] = int32_t(i);  // a repeated pair: last wins
  }

  std::vector<std::string> bpe(const std::string& token) const;
  void pretokenize(std::u32string_view text, std::vector<std::string>* pieces) const;
  std::vector<std::string> tokenize(std::string_view text) const;
  int32_t id_of(const std::string& piece) const;
};

std::vector<std::string> ClipTokenizer::Impl::bpe(const std::string& token) const {
  if (token == kBos || token == kEos) return {token};  // CLIPTokenizer's pre-filled cache
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(token);
    if (it != cache.end()) return it->second;
  }
  std::vector<std::string> word;
  for (size_t i = 0; i < token.size();) {  // one symbol per code point
    size_t len = 1;
    while (i + len < token.size() && (static_cast<unsigned char>(token[i + len]) & 0xC0) == 0x80) ++len;
    word.push_back(token.substr(i, len));
    i += len;
  }
  if (word.empty()) return {};
  word.back() += "</w>";
  std::string key;
  while (word.size() > 1) {
    int32_t best = INT32_MAX;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      key.assign(word[i]).append(" ").append(word[i + 1]);
      auto it = ranks.find(key);
      if (it != ranks.end() && it->second < best) best = it->second, best_i = i;
    }
    if (best == INT32_MAX) break;
    const std::string first = word[best_i], second = word[best_i + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(word[i++]));
      }
    }
    word = std::move(merged);
  }
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() >= kCacheLimit) cache.clear();
  cache.emplace(token, word);
  return word;
}

namespace {

// Case-insensitive literal match as the `regex` module does it for these ASCII patterns:
// besides ASCII case, only U+017F LATIN SMALL LETTER LONG S matches 's' (checked by the
// table generator).
bool literal_at(std::u32string_view s, size_t i, std::string_view lit) {
  if (i + lit.size() > s.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    char32_t c = s[i + k], p = char32_t(lit[k]);
    bool letter = p >= 'a' && p <= 'z';
    if (c != p && !(letter && c == p - 32) && !(p == 's' && c == 0x17F)) return false;
  }
  return true;
}

}  // namespace

// re.findall of CLIP's pattern; each match is UTF-8 encoded and mapped through the byte alphabet.
void ClipTokenizer::Impl::pretokenize(std::u32string_view s, std::vector<std::string>* pieces) const {
  static constexpr std::string_view kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  auto has = [&](size_t i, uint16_t bit) { return (unicode::props(s[i]) & bit) != 0; };
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    if (literal_at(s, i, kBos)) {
      len = kBos.size();
    } else if (literal_at(s, i, kEos)) {
      len = kEos.size();
    } else {
      for (std::string_view c : kContractions)
        if (literal_at(s, i, c)) {
          len = c.size();
          break;
        }
    }
    if (len == 0) {
      uint16_t run_bit = 0;
      if (has(i, unicode::kTokLetter)) run_bit = unicode::kTokLetter;
      else if (has(i, unicode::kTokNumber)) len = 1;
      else if (has(i, unicode::kTokOther)) run_bit = unicode::kTokOther;
      if (run_bit) {
        len = 1;
        while (i + len < s.size() && has(i + len, run_bit)) ++len;
      }
    }
    if (len == 0) {  // whitespace (or U+0345, which no alternative matches): skipped
      ++i;
      continue;
    }
    std::string utf8 = utf8_encode(s.substr(i, len));
    std::string mapped;
    for (unsigned char b : utf8) mapped += byte_encoder[b];
    for (std::string& p : bpe(mapped)) pieces->push_back(std::move(p));
    i += len;
  }
}

std::vector<std::string> ClipTokenizer::Impl::tokenize(std::string_view text) const {
  std::u32string u = utf8_decode(text);
  // Split out added tokens (leftmost, then longest), like transformers' Trie.split.
  struct Chunk {
    std::u32string text;
    const AddedToken* token;
  };
  std::vector<Chunk> chunks;
  size_t start = 0;
  for (size_t i = 0; i < u.size();) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& t : added)
      if (!t.content.empty() && u.compare(i, t.content.size(), t.content) == 0 &&
          (!hit || t.content.size() > hit->content.size()))
        hit = &t;
    if (!hit) {
      ++i;
      continue;
    }
    chunks.push_back({u.substr(start, i - start), nullptr});
    chunks.push_back({hit->content, hit});
    i += hit->content.size();
    start = i;
  }
  chunks.push_back({u.substr(start), nullptr});
  // lstrip / rstrip of an added token eat the whitespace next to it.
  for (size_t i = 0; i < chunks.size(); ++i) {
    const AddedToken* t = chunks[i].token;
    if (!t) continue;
    if (t->rstrip && i + 1 < chunks.size() && !chunks[i + 1].token) {
      std::u32string& r = chunks[i + 1].text;
      size_t k = 0;
      while (k < r.size() && is_py_space(r[k])) ++k;
      r.erase(0, k);
    }
    if (t->lstrip && i > 0 && !chunks[i - 1].token) {
      std::u32string& l = chunks[i - 1].text;
      while (!l.empty() && is_py_space(l.back())) l.pop_back();
    }
  }
  std::vector<std::string> pieces;
  for (const Chunk& c : chunks) {
    if (c.token) pieces.push_back(c.token->utf8);
    else if (!c.text.empty()) pretokenize(clip_normalize(c.text), &pieces);
  }
  return pieces;
}

int32_t ClipTokenizer::Impl::id_of(const std::string& piece) const {
  for (const AddedToken& t : added)
    if (t.utf8 == piece) return t.id;
  auto it = vocab.find(piece);
  return it != vocab.end() ? it->second : unk;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------
namespace {

using Json = nlohmann::json;

std::unordered_map<std::string, int32_t> parse_vocab(const std::string& text, const std::string& path) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || j.empty()) fail(ErrorCode::kFormat, path + ": expected a non-empty object of token -> id");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    const Json& v = it.value();
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= INT32_MAX)
      fail(ErrorCode::kFormat, path + ": id of token \"" + it.key() + "\" is not an integer in [0, 2^31)");
    vocab[it.key()] = int32_t(v.get<int64_t>());
  }
  return vocab;
}

struct SpecialConfig {
  std::string bos = kBos, eos = kEos, unk = kEos, pad = kEos;
  std::vector<AddedToken> added;  // added_tokens_decoder / additional_special_tokens, or flags
  int max_length = kDefaultMaxLength;
};

AddedToken parse_added_token(const Json& v, const std::string& path, const std::string& field) {
  AddedToken t;
  if (v.is_string()) {
    t.utf8 = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    t.utf8 = v["content"].get<std::string>();
    auto flag = [&](const char* name) {
      if (!v.contains(name) || v[name].is_null()) return false;
      if (!v[name].is_boolean()) fail(ErrorCode::kFormat, path + ": " + field + "." + name + " is not a boolean");
      return v[name].get<bool>();
    };
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
    if (flag("single_word"))
      fail(ErrorCode::kUnsupported, path + ": " + field + " uses single_word, which is not supported");
  } else {
    fail(ErrorCode::kFormat, path + ": " + field + " is neither a string nor a token object");
  }
  if (t.utf8.empty() || !valid_utf8(t.utf8)) fail(ErrorCode::kFormat, path + ": " + field + " is empty or not UTF-8");
  t.content = utf8_decode(t.utf8);
  return t;
}

void read_special_config_text(const std::string& text, const std::string& path, SpecialConfig* cfg);

void read_special_config(const std::string& path, SpecialConfig* cfg) {
  read_special_config_text(read_file(path), path, cfg);
}

// `path` names the source in messages.
void read_special_config_text(const std::string& text, const std::string& path, SpecialConfig* cfg) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  std::pair<const char*, std::string*> fields[] = {
      {"bos_token", &cfg->bos}, {"eos_token", &cfg->eos}, {"unk_token", &cfg->unk}, {"pad_token", &cfg->pad}};
  for (auto [name, dst] : fields) {
    if (!j.contains(name)) continue;
    if (j[name].is_null()) fail(ErrorCode::kModel, path + ": " + name + " is null; CLIP needs it");
    AddedToken t = parse_added_token(j[name], path, name);
    *dst = t.utf8;
    if (t.lstrip || t.rstrip) cfg->added.push_back(t);  // keep its flags for splitting
  }
  if (j.contains("added_tokens_decoder")) {
    const Json& d = j["added_tokens_decoder"];
    if (!d.is_object()) fail(ErrorCode::kFormat, path + ": added_tokens_decoder is not an object");
    for (auto it = d.begin(); it != d.end(); ++it) {
      AddedToken t = parse_added_token(it.value(), path, "added_tokens_decoder." + it.key());
      char* end = nullptr;
      long id = std::strtol(it.key().c_str(), &end, 10);
      if (it.key().empty() || *end != '\0' || id < 0 || id >= INT32_MAX)
        fail(ErrorCode::kFormat, path + ": added_tokens_decoder key \"" + it.key() + "\" is not an id");
      t.id = int32_t(id);
      cfg->added.push_back(t);
    }
  }
  if (j.contains("additional_special_tokens") && !j["additional_special_tokens"].is_null()) {
    const Json& a = j["additional_special_tokens"];
    if (!a.is_array()) fail(ErrorCode::kFormat, path + ": additional_special_tokens is not a list");
    for (const Json& v : a) cfg->added.push_back(parse_added_token(v, path, "additional_special_tokens"));
  }
  if (j.contains("model_max_length")) {
    const Json& m = j["model_max_length"];
    if (!m.is_number_integer() || m.get<int64_t>() < 2 || m.get<int64_t>() > 65536)
      fail(ErrorCode::kModel, path + ": model_max_length " + m.dump() + " is not a usable sequence length");
    cfg->max_length = int(m.get<int64_t>());
  }
}

std::shared_ptr<ClipTokenizer::Impl> build(std::unordered_map<std::string, int32_t> vocab, const MergeList& merges,
                                           const SpecialConfig& cfg, const std::string& where) {
  auto impl = std::make_shared<ClipTokenizer::Impl>();
  impl->vocab = std::move(vocab);
  impl->set_merges(merges);
  impl->max_length = cfg.max_length;
  // Added tokens: explicit ones keep their ids; the rest are looked up in the vocabulary.
  auto add = [&](AddedToken t) -> int32_t {
    for (AddedToken& a : impl->added) {
      if (a.utf8 != t.utf8) continue;
      a.lstrip |= t.lstrip;
      a.rstrip |= t.rstrip;
      if (a.id < 0) a.id = t.id;
      return a.id;
    }
    impl->added.push_back(std::move(t));
    return impl->added.back().id;
  };
  for (const AddedToken& t : cfg.added) add(t);
  const std::string* roles[4] = {&cfg.bos, &cfg.eos, &cfg.unk, &cfg.pad};
  for (const std::string* content : roles) {
    AddedToken t;
    t.utf8 = *content;
    t.content = utf8_decode(*content);
    add(std::move(t));
  }
  for (AddedToken& a : impl->added) {
    if (a.id >= 0) continue;
    auto it = impl->vocab.find(a.utf8);
    if (it == impl->vocab.end())
      fail(ErrorCode::kModel, where + ": special token \"" + a.utf8 + "\" is not in the vocabulary");
    a.id = it->second;
  }
  int32_t* ids[4] = {&impl->bos, &impl->eos, &impl->unk, &impl->pad};
  for (int k = 0; k < 4; ++k)
    for (const AddedToken& a : impl->added)
      if (a.utf8 == *roles[k]) *ids[k] = a.id;
  return impl;
}

}  // namespace

ClipTokenizer::ClipTokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  auto vocab = parse_vocab(read_file(vocab_json), vocab_json);
  MergeList merges = parse_merges(read_file(merges_txt), merges_txt);
  return ClipTokenizer(build(std::move(vocab), merges, SpecialConfig{}, vocab_json));
}

ClipTokenizer ClipTokenizer::from_memory(const std::string& vocab_json_text, const std::string& merges_text,
                                         const std::string& vocab_name, const std::string& merges_name,
                                         const std::vector<std::pair<std::string, std::string>>& special_configs) {
  auto vocab = parse_vocab(vocab_json_text, vocab_name);
  MergeList merges = parse_merges(merges_text, merges_name);
  SpecialConfig cfg;
  for (const auto& [text, name] : special_configs)
    if (!text.empty()) read_special_config_text(text, name, &cfg);
  return ClipTokenizer(build(std::move(vocab), merges, cfg, vocab_name));
}

ClipTokenizer ClipTokenizer::from_folder(const std::string& tokenizer_dir) {
  namespace fs = std::filesystem;
  fs::path dir(tokenizer_dir);
  if (!fs::is_directory(dir)) fail(ErrorCode::kIo, "tokenizer folder not found: " + tokenizer_dir);
  std::string vocab_path = (dir / "vocab.json").string();
  std::string merges_path = (dir / "merges.txt").string();
  auto vocab = parse_vocab(read_file(vocab_path), vocab_path);
  MergeList merges = parse_merges(read_file(merges_path), merges_path);
  SpecialConfig cfg;
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    fs::path p = dir / name;
    if (fs::exists(p)) read_special_config(p.string(), &cfg);
  }
  return ClipTokenizer(build(std::move(vocab), merges, cfg, tokenizer_dir));
}

namespace {

// openai/CLIP's vocabulary from bpe_simple_vocab_16e6.txt.gz: the tokens in id order and the merges.
std::pair<std::vector<std::string>, MergeList> clip_bpe_tokens(const std::string& path) {
  std::string text = read_gz(path);
  if (!valid_utf8(text)) fail(ErrorCode::kFormat, path + ": not UTF-8 text");
  // openai/CLIP: split('\n')[1:48895], each line split on whitespace.
  MergeList merges;
  size_t pos = text.find('\n');
  if (pos == std::string::npos) fail(ErrorCode::kFormat, path + ": no merges after the header line");
  for (size_t line_no = 2; pos < text.size() && merges.size() < kClipMerges; ++line_no) {
    size_t end = std::min(text.find('\n', pos + 1), text.size());
    std::vector<std::string> parts = split_whitespace(std::string_view(text).substr(pos + 1, end - pos - 1));
    if (parts.size() == 2) merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
    else if (!(parts.empty() && end == text.size()))
      fail(ErrorCode::kFormat, path + ": line " + std::to_string(line_no) + " is not a merge of two symbols");
    pos = end;
  }
  if (merges.empty()) fail(ErrorCode::kFormat, path + ": no merges after the header line");
  std::vector<std::string> tokens;
  for (auto [b, cp] : byte_alphabet()) tokens.push_back(utf8_encode(std::u32string(1, cp)));
  for (size_t i = 0; i < 256; ++i) tokens.push_back(tokens[i] + "</w>");
  for (const auto& m : merges) tokens.push_back(m.first + m.second);
  tokens.push_back(kBos);
  tokens.push_back(kEos);
  return {std::move(tokens), std::move(merges)};
}

}  // namespace

ClipTokenizer ClipTokenizer::from_bpe_gz(const std::string& path, const std::string& pad_token) {
  auto [tokens, merges] = clip_bpe_tokens(path);
  std::unordered_map<std::string, int32_t> vocab;
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = int32_t(i);  // dict(zip): last wins
  SpecialConfig cfg;
  if (!pad_token.empty()) {
    if (!vocab.count(pad_token)) fail(ErrorCode::kInvalidArgument, path + ": pad token '" + pad_token + "' is not in the vocabulary");
    cfg.pad = pad_token;
  }
  return ClipTokenizer(build(std::move(vocab), merges, cfg, path));
}

std::pair<std::string, std::string> ClipTokenizer::files_from_bpe_gz(const std::string& path) {
  auto [tokens, merges] = clip_bpe_tokens(path);
  Json vocab = Json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = int32_t(i);
  std::string m = "#version: 0.2\n";
  for (const auto& [a, b] : merges) m += a + " " + b + "\n";
  return {vocab.dump(), m};
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------
std::vector<std::string> ClipTokenizer::tokens(std::string_view text) const { return impl_->tokenize(text); }

std::vector<int32_t> ClipTokenizer::encode(std::string_view text) const {
  std::vector<std::string> pieces = impl_->tokenize(text);
  std::vector<int32_t> ids;
  ids.reserve(pieces.size());
  for (const std::string& p : pieces) ids.push_back(impl_->id_of(p));
  return ids;
}

std::vector<int32_t> ClipTokenizer::encode_padded(std::string_view text) const {
  std::vector<int32_t> body = encode(text);
  size_t keep = std::min(body.size(), size_t(impl_->max_length - 2));
  std::vector<int32_t> ids;
  ids.reserve(size_t(impl_->max_length));
  ids.push_back(impl_->bos);
  ids.insert(ids.end(), body.begin(), body.begin() + ptrdiff_t(keep));
  ids.push_back(impl_->eos);
  ids.resize(size_t(impl_->max_length), impl_->pad);
  return ids;
}

int32_t ClipTokenizer::bos_id() const { return impl_->bos; }
int32_t ClipTokenizer::eos_id() const { return impl_->eos; }
int32_t ClipTokenizer::pad_id() const { return impl_->pad; }
int32_t ClipTokenizer::unk_id() const { return impl_->unk; }
int ClipTokenizer::max_length() const { return impl_->max_length; }
size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }

int32_t ClipTokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->vocab.find(std::string(token));
  return it != impl_->vocab.end() ? it->second : -1;
}

}  // namespace sdpal
