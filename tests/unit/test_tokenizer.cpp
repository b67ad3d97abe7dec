// CLIP tokenizer and prompt normalization against transformers + ftfy goldens
// (tests/reference/make_token_goldens.py).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <unistd.h>

#include "core/error.h"
#include "model/text_normalize.h"
#include "model/tokenizer.h"

namespace fs = std::filesystem;
using sdpal::ClipTokenizer;
using sdpal::ErrorCode;

namespace {

const std::string kSrc = SDPAL_SOURCE_DIR;
const std::string kGoldens = kSrc + "/tests/goldens/tokenizer";
const std::string kAppleDir = kSrc + "/../shared/fixtures/coreml/sd21-base-palettized/original/compiled";
const std::string kBpeGz = kSrc + "/../shared/data/clip/bpe_simple_vocab_16e6.txt.gz";
const std::string kTinyDir = kSrc + "/tests/fixtures/tiny-sd-v1/tokenizer";

struct Golden {
  std::string prompt, text;
  std::vector<int32_t> ids;  // through the final eos; the rest is pad
};

std::vector<Golden> load_goldens(const std::string& name) {
  std::ifstream f(kGoldens + "/" + name);
  EXPECT_TRUE(f) << "missing golden file " << name;
  std::vector<Golden> out;
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    out.push_back({j["prompt"], j["text"], j["ids"].get<std::vector<int32_t>>()});
  }
  return out;
}

bool exists(const std::string& p) { return fs::exists(p); }

// The real CLIP vocabulary: the tiny fixture if it carries it, else Apple's export.
std::optional<std::pair<std::string, std::string>> clip_vocab_files() {
  for (const std::string& d : {kTinyDir, kAppleDir}) {
    std::string v = d + "/vocab.json", m = d + "/merges.txt";
    if (exists(v) && exists(m) && fs::file_size(v) > 400000) return std::pair{v, m};
  }
  return std::nullopt;
}

std::string escaped(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) {
    if (!s.empty()) s += ' ';
    s += std::to_string(x);
  }
  return s;
}

// Every golden prompt must give exactly the reference ids; reports the first mismatches.
void check_goldens(const ClipTokenizer& tok, const std::vector<Golden>& goldens) {
  ASSERT_FALSE(goldens.empty());
  int mismatches = 0;
  for (const Golden& g : goldens) {
    std::vector<int32_t> expect = g.ids;
    expect.resize(size_t(tok.max_length()), tok.pad_id());
    std::vector<int32_t> got = tok.encode_padded(g.prompt);
    if (got == expect) continue;
    if (++mismatches <= 8) {
      std::string pieces;
      for (const std::string& p : tok.tokens(g.prompt)) pieces += p + " ";
      ADD_FAILURE() << "prompt " << escaped(g.prompt) << "\n  expected " << join(expect) << "\n  got      "
                    << join(got) << "\n  pieces   " << escaped(pieces);
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << goldens.size() << " prompts";
}

fs::path temp_dir(const std::string& tag) {
  static int counter = 0;
  fs::path d = fs::temp_directory_path() /
               ("sdpal_tok_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& must_mention) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << must_mention;
  } catch (const sdpal::Error& e) {
    EXPECT_EQ(int(e.code()), int(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(must_mention), std::string::npos) << e.what();
  }
}

#define REQUIRE_CLIP_VOCAB(files)                                        \
  auto files = clip_vocab_files();                                       \
  if (!files) GTEST_SKIP() << "no CLIP vocab.json/merges.txt available"

}  // namespace

TEST(Tokenizer, GoldenPromptsSd1) {
  REQUIRE_CLIP_VOCAB(files);
  ClipTokenizer tok = ClipTokenizer::from_files(files->first, files->second);
  EXPECT_EQ(tok.vocab_size(), 49408u);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 49407);
  EXPECT_EQ(tok.unk_id(), 49407);
  EXPECT_EQ(tok.max_length(), 77);
  std::vector<Golden> goldens = load_goldens("token_ids.jsonl");
  EXPECT_GE(goldens.size(), 1000u);
  check_goldens(tok, goldens);
}

TEST(Tokenizer, GoldenNormalization) {
  int mismatches = 0;
  for (const Golden& g : load_goldens("token_ids.jsonl")) {
    if (g.prompt.find("<|startoftext|>") != std::string::npos || g.prompt.find("<|endoftext|>") != std::string::npos)
      continue;  // special tokens are split out before normalization
    std::string got = sdpal::utf8_encode(sdpal::clip_normalize(sdpal::utf8_decode(g.prompt)));
    if (got != g.text && ++mismatches <= 8)
      ADD_FAILURE() << "prompt " << escaped(g.prompt) << "\n  expected " << escaped(g.text) << "\n  got      "
                    << escaped(got);
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Tokenizer, GoldenPromptsSd2PadToken) {
  REQUIRE_CLIP_VOCAB(files);
  fs::path d = temp_dir("sd2");
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(kGoldens + "/sd2/" + name, d / name);
  fs::copy_file(files->first, d / "vocab.json");
  fs::copy_file(files->second, d / "merges.txt");
  ClipTokenizer tok = ClipTokenizer::from_folder(d.string());
  fs::remove_all(d);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.max_length(), 77);
  EXPECT_EQ(tok.encode("wow!!"), (std::vector<int32_t>{2781, 0, 0}));  // '!' is split out as pad
  check_goldens(tok, load_goldens("token_ids_sd2.jsonl"));
}

TEST(Tokenizer, BpeGzBuildsTheSameVocab) {
  if (!exists(kBpeGz)) GTEST_SKIP() << "no " << kBpeGz;
  REQUIRE_CLIP_VOCAB(files);
  ClipTokenizer gz = ClipTokenizer::from_bpe_gz(kBpeGz);
  std::ifstream f(files->first);
  nlohmann::json vocab = nlohmann::json::parse(f);
  ASSERT_EQ(gz.vocab_size(), vocab.size());
  int wrong = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    if (gz.token_to_id(it.key()) != it.value().get<int32_t>() && ++wrong <= 5)
      ADD_FAILURE() << "token " << escaped(it.key()) << " id " << gz.token_to_id(it.key()) << " vs " << it.value();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(gz.bos_id(), 49406);
  EXPECT_EQ(gz.pad_id(), 49407);
  check_goldens(gz, load_goldens("token_ids.jsonl"));  // same merges too
}

TEST(Tokenizer, TinyFixtureFolder) {
  if (!exists(kTinyDir + "/vocab.json")) GTEST_SKIP() << "no " << kTinyDir;
  ClipTokenizer tok = ClipTokenizer::from_folder(kTinyDir);
  EXPECT_GT(tok.vocab_size(), 0u);
  std::vector<int32_t> ids = tok.encode_padded("a photo of a cat");
  ASSERT_EQ(ids.size(), size_t(tok.max_length()));
  EXPECT_EQ(ids[0], tok.bos_id());
  for (int32_t id : ids) EXPECT_GE(id, 0);
  if (tok.vocab_size() == 49408 && tok.pad_id() == 49407) check_goldens(tok, load_goldens("token_ids.jsonl"));
}

TEST(Tokenizer, TruncatesToMaxLength) {
  REQUIRE_CLIP_VOCAB(files);
  ClipTokenizer tok = ClipTokenizer::from_files(files->first, files->second);
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "cat ";
  EXPECT_EQ(tok.encode(long_prompt).size(), 200u);
  std::vector<int32_t> ids = tok.encode_padded(long_prompt);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), 49406);
  EXPECT_EQ(ids.back(), 49407);
  EXPECT_EQ(ids[75], tok.token_to_id("cat</w>"));
  EXPECT_EQ(tok.tokens("Hello, world!"), (std::vector<std::string>{"hello</w>", ",</w>", "world</w>", "!</w>"}));
}

TEST(Tokenizer, InvalidUtf8DoesNotCrash) {
  REQUIRE_CLIP_VOCAB(files);
  ClipTokenizer tok = ClipTokenizer::from_files(files->first, files->second);
  // Invalid bytes read as U+FFFD, one per maximal invalid subpart (Python's errors="replace").
  EXPECT_EQ(tok.encode("caf\xC3"), tok.encode("caf\xEF\xBF\xBD"));
  EXPECT_EQ(tok.encode("a\xED\xA0\x80z"), tok.encode("a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz"));
  EXPECT_EQ(tok.encode("x\xF0\x9F\x98y"), tok.encode("x\xEF\xBF\xBDy"));
  EXPECT_EQ(tok.encode("\xC0\x80\xFF"), tok.encode("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string junk(size_t(rng() % 64), '\0');
    for (char& c : junk) c = char(rng() & 0xFF);
    std::vector<int32_t> ids = tok.encode_padded(junk);
    ASSERT_EQ(ids.size(), 77u);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < 49408);
  }
  // Random Latin-1 / cp1252 look-alikes drive every branch of ftfy's mojibake repair.
  const char32_t pool[] = {0x20, 'a', 'Z', '?', '\n', 0x1A, 0x80, 0x81, 0x8D, 0x9D, 0xA0, 0xA9, 0xAD, 0xB0,
                           0xC0, 0xC2, 0xC3, 0xC5, 0xCE, 0xD0, 0xD9, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xFF,
                           0x152, 0x153, 0x160, 0x178, 0x192, 0x2018, 0x201C, 0x2020, 0x2022, 0x2026,
                           0x20AC, 0x2122, 0x0432, 0x0402, 0x03B2, 0xFFFD, '&', ';', '#', '<'};
  for (int i = 0; i < 2000; ++i) {
    std::u32string s(size_t(rng() % 24), U' ');
    for (char32_t& c : s) c = pool[rng() % std::size(pool)];
    ASSERT_EQ(tok.encode_padded(sdpal::utf8_encode(s)).size(), 77u);
  }
}

TEST(Tokenizer, MalformedFilesNameTheFile) {
  fs::path d = temp_dir("bad");
  std::string good_vocab = R"({"a":0,"b":1,"ab</w>":2,"a</w>":3,"b</w>":4,"<|startoftext|>":5,"<|endoftext|>":6})";
  std::string good_merges = "#version: 0.2\na b</w>\n";
  auto files = [&](const std::string& vocab, const std::string& merges) {
    write(d / "vocab.json", vocab);
    write(d / "merges.txt", merges);
    return ClipTokenizer::from_files((d / "vocab.json").string(), (d / "merges.txt").string());
  };
  ClipTokenizer tiny = files(good_vocab, good_merges);
  EXPECT_EQ(tiny.encode("ab ba"), (std::vector<int32_t>{2, 1, 3}));
  EXPECT_EQ(tiny.encode("c"), (std::vector<int32_t>{6}));  // unknown -> unk (<|endoftext|>)

  std::string vocab_path = (d / "vocab.json").string(), merges_path = (d / "merges.txt").string();
  expect_error([&] { files("{\"a\":", good_merges); }, ErrorCode::kFormat, vocab_path);
  expect_error([&] { files("[1,2]", good_merges); }, ErrorCode::kFormat, vocab_path);
  expect_error([&] { files(R"({"a":"x"})", good_merges); }, ErrorCode::kFormat, vocab_path);
  expect_error([&] { files(R"({"a":-3})", good_merges); }, ErrorCode::kFormat, vocab_path);
  expect_error([&] { files(good_vocab, "#version: 0.2\na b c\n"); }, ErrorCode::kFormat, merges_path);
  expect_error([&] { files(good_vocab, "#version: 0.2\na\n"); }, ErrorCode::kFormat, merges_path);
  expect_error([&] { files(good_vocab, ""); }, ErrorCode::kFormat, merges_path);
  expect_error([&] { files(good_vocab, "#version\na \xFF\n"); }, ErrorCode::kFormat, merges_path);
  expect_error([&] { files(R"({"a":0})", good_merges); }, ErrorCode::kModel, "<|startoftext|>");
  expect_error([&] { ClipTokenizer::from_files((d / "nope.json").string(), merges_path); }, ErrorCode::kIo,
               "nope.json");
  expect_error([&] { ClipTokenizer::from_folder((d / "missing").string()); }, ErrorCode::kIo, "missing");
  expect_error([&] { ClipTokenizer::from_bpe_gz((d / "none.gz").string()); }, ErrorCode::kIo, "none.gz");
  write(d / "fake.gz", "not gzip at all\nreally");  // zlib reads plain text through; no merges fit
  expect_error([&] { ClipTokenizer::from_bpe_gz((d / "fake.gz").string()); }, ErrorCode::kFormat, "fake.gz");

  // Folder configs: bad JSON and unusable lengths name the config file.
  files(good_vocab, good_merges);
  write(d / "tokenizer_config.json", "{oops");
  expect_error([&] { ClipTokenizer::from_folder(d.string()); }, ErrorCode::kFormat, "tokenizer_config.json");
  write(d / "tokenizer_config.json", R"({"model_max_length": 1000000000000000019884624838656})");
  expect_error([&] { ClipTokenizer::from_folder(d.string()); }, ErrorCode::kModel, "model_max_length");
  write(d / "tokenizer_config.json", R"({"model_max_length": 16, "pad_token": "b"})");
  ClipTokenizer folder = ClipTokenizer::from_folder(d.string());
  EXPECT_EQ(folder.max_length(), 16);
  EXPECT_EQ(folder.pad_id(), 1);
  EXPECT_EQ(folder.encode_padded("a").size(), 16u);
  fs::remove_all(d);
}

TEST(TextNormalize, Pieces) {
  using sdpal::utf8_decode;
  using sdpal::utf8_encode;
  auto norm = [](const std::string& s) { return utf8_encode(sdpal::clip_normalize(utf8_decode(s))); };
  EXPECT_EQ(utf8_encode(sdpal::nfc_normalize(utf8_decode("e\xCC\x81"))), "\xC3\xA9");
  EXPECT_EQ(utf8_encode(sdpal::nfc_normalize(utf8_decode("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"))), "\xEA\xB0\x81");
  EXPECT_EQ(utf8_encode(sdpal::python_lower(utf8_decode("\xCE\x91\xCE\xA3 \xCE\xA3"))),
            "\xCE\xB1\xCF\x82 \xCF\x83");  // final sigma only after a letter
  EXPECT_EQ(norm("  Fish &amp; Chips\t\n"), "fish & chips");
  EXPECT_EQ(norm("<b>&amp;</b>"), "<b>&amp;</b>");  // '<' turns HTML unescaping off
  EXPECT_EQ(norm("\xEF\xAC\x81ne \xEF\xBC\xA1"), "fine a");  // ligature, fullwidth
  EXPECT_EQ(norm("caf\xC3\x83\xC2\xA9"), "caf\xC3\xA9");     // mojibake repaired
  EXPECT_EQ(norm("it\xE2\x80\x99s"), "it's");
  EXPECT_EQ(norm("\x1B[31mred\x1B[0m"), "red");
}

TEST(Tokenizer, EncodesFast) {
  REQUIRE_CLIP_VOCAB(files);
  ClipTokenizer tok = ClipTokenizer::from_files(files->first, files->second);
  std::vector<Golden> goldens = load_goldens("token_ids.jsonl");
  auto t0 = std::chrono::steady_clock::now();
  for (const Golden& g : goldens) tok.encode_padded(g.prompt);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  double per_prompt = ms / double(goldens.size());
  std::printf("encode_padded: %.3f ms per prompt (cold cache, %zu prompts)\n", per_prompt, goldens.size());
  EXPECT_LT(per_prompt, 1.0);
}
