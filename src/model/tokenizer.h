// CLIP's byte-level BPE tokenizer, matching transformers' CLIPTokenizer (4.46.3, the slow Python
// one, with ftfy installed) as diffusers calls it:
//     tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
//
// Steps: UTF-8 -> code points (invalid bytes -> U+FFFD); the special tokens (bos, eos, unk,
// pad and any added tokens of tokenizer_config.json) are split out of the raw text first, as
// transformers' added-token trie does, so with SD 2.x's pad token "!" every '!' becomes id 0;
// each remaining chunk goes through clip_normalize (ftfy.fix_text, whitespace_clean, lower:
// see text_normalize.h), the regex
//     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (`regex` module semantics, IGNORECASE), the GPT-2 byte -> unicode alphabet and BPE with
// "</w>" word ends. Unknown pieces map to the unk token. encode_padded: bos, at most
// max_length - 2 ids, eos, then pad up to max_length.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sdpal {

class ClipTokenizer {
 public:
  // vocab.json (token -> id) and merges.txt (header line, then "a b" per merge; only the first
  // 48894 merges are used, as CLIP does). Special tokens: SD v1 defaults ("<|startoftext|>",
  // "<|endoftext|>" as eos, unk and pad), max_length 77.
  static ClipTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  // The same from the files' contents (e.g. read from a zip archive); the names are for messages.
  // special_configs: (JSON text, name) of tokenizer_config.json then special_tokens_map.json, applied
  // as from_folder does (empty texts are skipped).
  static ClipTokenizer from_memory(const std::string& vocab_json_text, const std::string& merges_text,
                                   const std::string& vocab_name, const std::string& merges_name,
                                   const std::vector<std::pair<std::string, std::string>>& special_configs = {});
  // A diffusers tokenizer/ folder: vocab.json, merges.txt and, when present,
  // tokenizer_config.json then special_tokens_map.json (which wins, as in transformers) for
  // bos/eos/unk/pad (SD 2.x: pad "!" = id 0), added_tokens_decoder, additional_special_tokens
  // and model_max_length.
  static ClipTokenizer from_folder(const std::string& tokenizer_dir);
  // openai/CLIP's bpe_simple_vocab_16e6.txt.gz: the vocabulary is rebuilt as CLIP does
  // (256 byte symbols, the same with "</w>", one token per merge, then the two specials).
  // pad_token: "" keeps "<|endoftext|>"; SD 2.x's tokenizer pads with "!" (id 0).
  static ClipTokenizer from_bpe_gz(const std::string& path, const std::string& pad_token = "");
  // The same vocabulary as vocab.json and merges.txt texts (for writing a self-contained model).
  static std::pair<std::string, std::string> files_from_bpe_gz(const std::string& path);

  std::vector<int32_t> encode(std::string_view text) const;         // ids, no bos/eos, untruncated
  std::vector<int32_t> encode_padded(std::string_view text) const;  // max_length() ids
  std::vector<std::string> tokens(std::string_view text) const;     // BPE pieces (vocab strings)

  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  int max_length() const;
  size_t vocab_size() const;                         // entries of vocab.json
  int32_t token_to_id(std::string_view token) const;  // -1 when absent

  struct Impl;

 private:
  explicit ClipTokenizer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // immutable after construction except for its locked cache
};

}  // namespace sdpal
