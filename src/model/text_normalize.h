// Prompt clean-up done before CLIP's BPE, reproducing what transformers' CLIPTokenizer (4.46.3)
// does when ftfy (6.3.1) is installed, as it is under diffusers:
//
//     whitespace_clean(ftfy.fix_text(text)).lower()
//
// ftfy.fix_text with its default TextFixerConfig is reproduced completely and in its order:
// the text is fixed line by line (segments end after '\n'); each segment is repeated through
// the steps below until nothing changes:
//   - unescape_html ("auto": off from the first line that contains '<' onwards): the html5
//     entity names that end in ';', their upper-cased Latin forms (&EACUTE;), and numeric
//     references (&#39; &#x2019;) decoded as Python's html.unescape does (C1 -> cp1252,
//     invalid code points -> U+FFFD or nothing; a result containing ';' is left as it was);
//   - fix_encoding: ftfy's mojibake repair (BADNESS_RE detector, the ten single-byte
//     encodings in ftfy's order with restore_byte_a0 / replace_lossy_sequences, UTF-8 and
//     utf-8-variants (CESU-8, Java's C0 80) decoding, decode_inconsistent_utf8,
//     latin-1 -> windows-1252, fix_c1_controls);
//   - fix_c1_controls, fix_latin_ligatures, fix_character_width (fullwidth -> ASCII,
//     halfwidth katakana/hangul, U+3000 -> space), uncurl_quotes, fix_line_breaks
//     (CRLF, CR, U+2028, U+2029, U+0085 -> '\n'), fix_surrogates, remove_terminal_escapes
//     (ESC [ digits/; letter), remove_control_chars, and NFC normalization.
// Nothing of fix_text's default behaviour is left out. Two steps never have work here:
// fix_surrogates (UTF-8 input cannot carry surrogate code points) and the `explain` plans.
// A safety cap of 64 rounds (per segment, and in fix_encoding) stops a runaway input (ftfy loops
// until the text stops changing; no input is known to need more than a few rounds).
// Verified against Python on the goldens and on 60k random strings (HTML, mojibake in eight
// encodings, C1/controls, combining marks, Hangul, Greek sigma) plus every code point alone.
//
// Invalid UTF-8 is not an error: each maximal invalid subsequence becomes U+FFFD, exactly as
// Python's bytes.decode("utf-8", errors="replace") does, and the text goes on from there.
//
// openai/CLIP's simple_tokenizer differs: it applies html.unescape twice after ftfy (all of
// html5's entities, even without ';', even when the text contains '<') and strips; it does not
// split special tokens out before ftfy. We follow transformers, which is what diffusers runs.
#pragma once
#include <string>
#include <string_view>

namespace sdpal {

// UTF-8 -> code points; invalid sequences -> U+FFFD (Python errors="replace").
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);

// The pieces, exposed for tests.
std::u32string nfc_normalize(std::u32string_view s);  // unicodedata.normalize("NFC", s)
std::u32string python_lower(std::u32string_view s);   // str.lower(), final sigma included
std::u32string whitespace_clean(std::u32string_view s);  // re.sub(r"\s+", " ", s).strip()
std::u32string ftfy_fix_text(std::u32string_view s);  // ftfy.fix_text(s), default config
std::u32string ftfy_fix_encoding(std::u32string_view s);  // ftfy.fix_encoding(s)
bool ftfy_is_bad(std::u32string_view s);              // ftfy.badness.is_bad(s)

// whitespace_clean(ftfy.fix_text(s)).lower(): what CLIPTokenizer._tokenize splits into words.
std::u32string clip_normalize(std::u32string_view s);

}  // namespace sdpal
