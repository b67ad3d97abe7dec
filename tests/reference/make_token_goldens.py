#!/usr/bin/env python3
"""Golden token ids for the CLIP tokenizer (tests/unit/test_tokenizer.cpp).

Reference: transformers' slow CLIPTokenizer with ftfy installed, as diffusers calls it:
    tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
with the real CLIP vocabulary (Apple's Core ML export of vocab.json / merges.txt).

Writes tests/goldens/tokenizer/:
  token_ids.jsonl      SD v1 setup (pad = <|endoftext|>), >= 1000 prompts: a handwritten list
                       plus seeded random prompts from many categories (see CATEGORIES).
  token_ids_sd2.jsonl  SD 2.x setup (pad = "!" = id 0, from sd2/ tokenizer_config.json and
                       special_tokens_map.json), a subset rich in '!'.
Each line: {"prompt": str, "ids": [...], "text": str}. "ids" is input_ids cut after the eos
token: the script checks that the rest is all pad, so the test re-pads to 77 losslessly.
"text" is whitespace_clean(ftfy.fix_text(prompt)).lower(), to test normalization alone.

Deterministic; run with the reference venv:
    /work/venv-ref/bin/python tests/reference/make_token_goldens.py
"""
import json
import os
import random
import shutil
import sys
import tempfile

import ftfy
import regex
from transformers import CLIPTokenizer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
APPLE = os.path.join(REPO, "..", "shared", "fixtures", "coreml", "sd21-base-palettized", "original",
                     "compiled")
OUT = os.path.join(REPO, "tests", "goldens", "tokenizer")
MAX_LEN = 77

HANDWRITTEN = [
    "", " ", "     ", "\t\n \r\n", "a", "A", "a photo of an astronaut riding a horse on mars",
    "A photograph of an astronaut riding a horse",
    "(masterpiece:1.2), best quality, [bad hands], {detailed}, ((sharp focus))",
    "portrait of a woman, by greg rutkowski, trending on artstation, 8k, octane render",
    "a cat; a dog: a bird? yes! no... maybe -- or ~~ not",
    "it's don't they're we've I'm you'll he'd IT'S DON'T THEY'RE WE'VE I'M YOU'LL HE'D",
    "it\u2019s \u2018quoted\u2019 \u201cdouble\u201d \u201edown\u201f \u02bcmodifier",
    "rock 'n' roll '' ''' 's 'S 'sam 'tis 'Twas '\u017f '\u017fam",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m S\u00e3o Paulo Z\u00fcrich Krak\u00f3w Dvo\u0159\u00e1k fa\u00e7ade",
    "cafe\u0301 nai\u0308ve A\u030angstro\u0308m Vie\u0323\u0302t Nam",
    "\u65e5\u672c\u8a9e \u4e2d\u6587 \u6771\u4eac\u30bf\u30ef\u30fc \u3072\u3089\u304c\u306a \u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \uc11c\uc6b8\uc758 \ubc24 \u1100\u1161\u11a8 \u1112\u1161\u11ab",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0391 \u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u0399\u0391 \u03a3 \u0391\u03a3\u0391 \u03a3\u03a3",
    "\u041f\u0420\u0418\u0412\u0415\u0422 \u041c\u0418\u0420 \u0532\u0561\u0580\u0587",
    "\U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f3f3\ufe0f\u200d\U0001f308 \U0001f1ef\U0001f1f5 1\ufe0f\u20e3 \u2764\ufe0f",
    "\U0001f9d1\U0001f3ff\u200d\U0001f680 astronaut \U0001f469\U0001f3fb\u200d\U0001f52c scientist",
    "fish &amp; chips &lt;3 &gt; &quot;hi&quot; &#39;yo&#39; a&nbsp;b &#8217; &#x2764; &hellip;",
    "&eacute;t&eacute; &EACUTE;T&EACUTE; &NTILDE; &nTILDE; &SZLIG; &amp &amp;amp; &#59; &#x3b; &#;",
    "<b>bold &amp; brave</b>", "x < y &amp; z", "line1 &amp;\n<line2> &amp;\nline3 &amp;",
    "&#0; &#128; &#x81; &#xD800; &#1114112; &#99999999999999999999; &#12ab; &#x; &#X41;",
    "3.14 1,000 1e10 2024 8k 4K 16:9 50% $100 \u21165 \u00bd x\u00b2 \u216b \u0661\u0662\u0663 \uff11\uff12\uff13",
    "!!! ?! ... --- *** ~~~ ((())) <<>> ## @@ ||| \\\\ // ^^ ``` \"\"\" ;;; ::",
    "HeLLo WoRLD \u0130stanbul \u0130I\u0131i DIY\u0130",
    "\uff21\uff22\uff23 \uff48\uff45\uff4c\uff4c\uff4f \uff01\uff1f \u3000\u3000 \uff76\uff80\uff76\uff85 \uff8a\uff9f",
    "\ufb01ne \ufb02ower \ufb00 \ufb03 \ufb04 \ufb05 \ufb06 \u0133 \u01c4 \u01c5 \u01c6 \u0149 \u0153uvre",
    "tab\there  two  spaces\nnewline\r\ncrlf\rcr\u2028ls\u2029ps\u0085nel\u00a0nbsp\u3000ideo\u200bzwsp",
    "\ufeffbom \x00nul \x07bel \x1b[31mred\x1b[0m \x1b[1;32;4mx\x1b[m \x1b[q \x7f del",
    "\x80\x81\x8d\x8f\x90\x9d\x9f c1 controls \x85",
    "caf\u00c3\u00a9 \u00e2\u20ac\u2122 \u00c3\u00a2\u00e2\u201a\u00ac\u00e2\u201e\u00a2 \u00c3 la mode",
    "\u00d0\u0178\u00d1\u20ac\u00d0\u00b8\u00d0\u00b2\u00d0\u00b5\u00d1\u201a sch\u00c3\u00b6n",
    "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "x<|startoftext|>y<|endoftext|>z",
    "<|ENDOFTEXT|> <|EndOfText|> <|endoftext| <|endoftext|>>", "<|\u017ftartoftext|> '\u017f",
    "\ufffd replacement \ufffd\ufffd", "\u0345 ypogegrammeni \u03b1\u0345 \u0391\u0345",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u036b\u0357\u0364l\u0334g\u0309o",
    "\u212a kelvin \u212b angstrom \u2126 ohm \u00b5 micro \u017f long s \u1e9e sharp S",
    "a" * 200, "word " * 100, "\U0001f600" * 50, "a, " * 60,
    "photo of a dog, " * 12 + "the end",
    "a very long prompt " + " ".join(f"token{i}" for i in range(90)),
    "\n\n\n", "\u3000", "\u00a0", "\u200b", "\ufeff", ".", "'", "''", "'s", "s'", "&", ";",
    "1", "12345678901234567890", "\u2460\u2461\u2462 \u00bc\u00be \u2070\u00b9",
]

WORDS = ("cat dog horse astronaut castle forest city street portrait landscape mountain river sunset "
         "dragon robot warrior princess wizard spaceship ocean flower garden neon cyberpunk steampunk "
         "watercolor oil painting photograph cinematic lighting dramatic soft bokeh ultra detailed "
         "highly realistic epic fantasy anime studio ghibli unreal engine volumetric fog golden hour "
         "masterpiece best quality intricate elegant concept art smooth sharp focus illustration").split()
ARTISTS = ["greg rutkowski", "alphonse mucha", "artgerm", "wlop", "James Gurney", "Hayao Miyazaki",
           "Claude Monet", "Van Gogh", "Ivan Aivazovsky", "Zdzis\u0142aw Beksi\u0144ski"]
ACCENTED = ["caf\u00e9", "na\u00efve", "r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m", "S\u00e3o Paulo",
            "Z\u00fcrich", "Krak\u00f3w", "Dvo\u0159\u00e1k", "fa\u00e7ade", "jalape\u00f1o",
            "cr\u00e8me br\u00fbl\u00e9e", "\u0141\u00f3d\u017a", "Ærøskøbing", "\u00deingvellir",
            "cafe\u0301", "Pe\u0301rez", "n\u0303", "\u1ea0\u1ea1", "Vi\u1ec7t Nam", "\u0110\u00e0 N\u1eb5ng",
            "\u00e0 la carte", "\u00fcber", "STRA\u00dfE", "\u0130zmir", "\u0131\u015f\u0131k"]
SCRIPTS = ["\u65e5\u672c\u8a9e", "\u4e2d\u6587\u5b57", "\u6771\u4eac\u30bf\u30ef\u30fc", "\u3072\u3089\u304c\u306a",
           "\u30ab\u30bf\u30ab\u30ca", "\ud55c\uad6d\uc5b4", "\uc11c\uc6b8", "\u1100\u1161\u11a8",
           "\u0645\u0631\u062d\u0628\u0627", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
           "\u05e9\u05dc\u05d5\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
           "\u0395\u03bb\u03bb\u03ac\u03b4\u03b1", "\u039f\u0394\u039f\u03a3", "\u041c\u043e\u0441\u043a\u0432\u0430",
           "\u0540\u0561\u0575\u0561\u057d\u057f\u0561\u0576", "\u10e1\u10d0\u10e5\u10d0\u10e0\u10d7\u10d5\u10d4\u10da\u10dd",
           "\u12a0\u121b\u122d\u129b", "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd", "\u1019\u103c\u1014\u103a\u1019\u102c"]
EMOJI = ["\U0001f600", "\U0001f525", "\u2728", "\U0001f44d\U0001f3fd", "\U0001f44b\U0001f3ff",
         "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
         "\U0001f1ef\U0001f1f5", "\U0001f1fa\U0001f1f8", "1\ufe0f\u20e3", "\u2764\ufe0f", "\U0001f408\u200d\u2b1b",
         "\U0001f9d1\U0001f3fd\u200d\U0001f3a8", "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         "\u263a", "\u2603\ufe0f", "\U0001f30a", "\U0001f984"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&nbsp;", "&#8217;", "&#x2764;", "&hellip;",
            "&eacute;", "&EACUTE;", "&copy;", "&mdash;", "&ndash;", "&#x1F600;", "&#128512;", "&amp",
            "&#;", "&foo;", "&amp;amp;", "&lt;b&gt;", "&#65;", "&#x41;", "&frac12;", "&Jscr;", "&#150;"]
NUMBERS = ["3.14", "1,000", "1e10", "2024", "8k", "4K", "16:9", "50%", "$100", "\u20ac5", "\u00a33.50",
           "-1", "+7", "0.5", "1/2", "\u00bd", "x\u00b2", "\u2167", "\u0661\u0662", "\uff15\uff10", "10^6",
           "1.0e-3", "v1.5", "sd2.1", "512x512", "768\u00d7768", "#1", "No.9", "\u2460"]
PUNCT = ["!!!", "?!", "...", "\u2026", "---", "\u2014", "\u2013", "***", "~~~", "((", "))", "[[", "]]",
         "<<", ">>", "##", "@@", "|||", "\\", "//", "^^", "``", ";;", "::", ",,", "''", "\"\"", "!?", "(:",
         ":)", ":-)", "<3", "\u00bf", "\u00a1", "\u00ab", "\u00bb", "\u3001", "\u3002", "\u300c", "\u300d"]
APOS = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "it\u2019s",
        "don\u2019t", "\u2018quoted\u2019", "\u201cdouble\u201d", "rock 'n' roll", "'s", "'''s", "O'Neil",
        "dogs'", "y'all", "ma'am", "'\u017f", "li\u2019l"]
FULLWIDTH = ["\uff21\uff22\uff23", "\uff48\uff45\uff4c\uff4c\uff4f", "\uff01\uff1f", "\u3000",
             "\uff76\uff80\uff76\uff85", "\uff8a\uff9f", "\uff08\uff4d\uff41\uff53\uff54\uff45\uff52\uff09",
             "\uffe5100", "\uffe3", "\uffe0", "\uff5e"]
LIGATURES = ["\ufb01ne", "\ufb02ower", "\ufb00", "\ufb03", "\ufb04", "\ufb05", "\ufb06", "\u0133",
             "\u01c4", "\u01c8", "\u0149", "\u0153uvre", "\u00e6ther"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "   \t ", "\u00a0", "\u2028", "\u2029", "\u3000", "\u2003",
          "\u200b", "\u0085", "\x0b", "\x0c", "\x1c", "\u180e", "\u202f", "\ufeff"]
CONTROLS = ["\x00", "\x07", "\x1b[31m", "\x1b[0m", "\x1b[1;4m", "\x7f", "\x80", "\x81", "\x85", "\x93",
            "\x9d", "\u206a", "\ufff9", "\ufffc", "\ufffd", "\u200e", "\u202e"]
MOJIBAKE_SOURCES = ["caf\u00e9", "na\u00efve", "\u201cquoted\u201d", "it\u2019s", "\u2714 done", "sch\u00f6n",
                    "\u0395\u03bb\u03bb\u03ac\u03b4\u03b1", "\u041f\u0440\u0438\u0432\u0435\u0442",
                    "\u65e5\u672c\u8a9e", "\U0001f600 smile", "\u00e0 la mode", "voil\u00e0", "\u20ac100",
                    "\u2014dash\u2014", "\u2026", "\u00f1and\u00fa", "\u0141\u00f3d\u017a"]
MOJIBAKE_ENCODINGS = ["latin-1", "windows-1252", "windows-1251", "windows-1250", "windows-1253",
                      "macroman", "cp437", "iso-8859-2"]
WEIGHTS = ["({}:1.2)", "({}:0.8)", "[{}]", "{{{}}}", "(({}))", "[[{}]]", "({})", "{}++", "{}--",
           "({}:1.5)", "<lora:{}:0.7>", "{} AND {}", "{} | {}", "[{}:{}:0.5]"]


def pick(rng, pool, n=1):
    return [rng.choice(pool) for _ in range(n)]


def sd_prompt(rng):
    parts = []
    for _ in range(rng.randint(2, 10)):
        w = " ".join(pick(rng, WORDS, rng.randint(1, 3)))
        if rng.random() < 0.35:
            w = rng.choice(WEIGHTS).replace("{}", w, 1).replace("{}", rng.choice(WORDS))
        if rng.random() < 0.15:
            w = "by " + rng.choice(ARTISTS)
        if rng.random() < 0.2:
            w = w.title() if rng.random() < 0.5 else w.upper()
        parts.append(w)
    return ", ".join(parts)


def mojibake(rng):
    s = rng.choice(MOJIBAKE_SOURCES)
    for _ in range(rng.randint(1, 2)):
        try:
            s = s.encode("utf-8").decode(rng.choice(MOJIBAKE_ENCODINGS))
        except UnicodeDecodeError:
            pass
    if rng.random() < 0.3:
        s = s.replace("\xa0", " ")
    return s


def combining(rng):
    base = rng.choice("aeiouAEIOUnNcCsSzZ\u03b1\u03c9\u0430\u0438")
    marks = pick(rng, ["\u0300", "\u0301", "\u0302", "\u0303", "\u0304", "\u0306", "\u0307", "\u0308",
                       "\u030a", "\u030b", "\u030c", "\u0323", "\u0327", "\u0328", "\u0331", "\u0345",
                       "\u05b0", "\u093c", "\u3099"], rng.randint(1, 4))
    return base + "".join(marks)


CATEGORIES = {
    "sd": lambda r: sd_prompt(r),
    "accents": lambda r: " ".join(pick(r, ACCENTED + WORDS, r.randint(2, 8))),
    "scripts": lambda r: " ".join(pick(r, SCRIPTS + WORDS[:5], r.randint(1, 6))),
    "emoji": lambda r: " ".join(pick(r, EMOJI + WORDS, r.randint(2, 8))) + r.choice(["", "".join(pick(r, EMOJI, 3))]),
    "entities": lambda r: r.choice(["", "<i>", "a < b "]) + " ".join(pick(r, ENTITIES + WORDS, r.randint(2, 8))),
    "numbers": lambda r: " ".join(pick(r, NUMBERS + WORDS, r.randint(2, 8))),
    "punct": lambda r: "".join(pick(r, PUNCT + WORDS + [" "], r.randint(2, 10))),
    "apostrophes": lambda r: " ".join(pick(r, APOS + WORDS, r.randint(2, 8))),
    "case": lambda r: "".join(c.upper() if r.random() < 0.5 else c for c in sd_prompt(r)),
    "fullwidth": lambda r: " ".join(pick(r, FULLWIDTH + WORDS, r.randint(2, 7))),
    "ligatures": lambda r: " ".join(pick(r, LIGATURES + WORDS, r.randint(2, 7))),
    "spaces": lambda r: "".join(x for w in pick(r, WORDS, r.randint(2, 7)) for x in (w, r.choice(SPACES))),
    "controls": lambda r: "".join(x for w in pick(r, WORDS, r.randint(2, 6)) for x in (w, r.choice(CONTROLS))),
    "mojibake": lambda r: " ".join([mojibake(r)] + pick(r, WORDS, r.randint(0, 3))),
    "combining": lambda r: " ".join(combining(r) for _ in range(r.randint(1, 5))),
    "long": lambda r: ", ".join(sd_prompt(r) for _ in range(r.randint(4, 9))),
    "special": lambda r: r.choice(["<|startoftext|>", "<|endoftext|>", "<|ENDOFTEXT|>"]).join(
        [sd_prompt(r) for _ in range(2)]),
    "mixed": lambda r: " ".join(CATEGORIES[c](r) for c in r.sample(sorted(set(CATEGORIES) - {"mixed", "long", "random"}), 3)),
    "random": lambda r: "".join(chr(r.choice(RANDOM_POOL)) for _ in range(r.randint(1, 20))),
}
RANDOM_POOL = ([c for c in range(0x20, 0x250)] + [c for c in range(0x300, 0x370)]
               + [c for c in range(0x370, 0x530)] + [c for c in range(0x1100, 0x1200)]
               + [c for c in range(0x2000, 0x2070)] + [c for c in range(0x3000, 0x3100)]
               + [c for c in range(0xAC00, 0xAC40)] + [c for c in range(0xFF00, 0xFFF0)]
               + [c for c in range(0x1F300, 0x1F400)] + [0xFB01, 0xFB02, 0x17F, 0x212A, 0x130, 0x3A3])


def prompts():
    out = list(HANDWRITTEN)
    rng = random.Random(20241127)
    names = list(CATEGORIES)
    per = 60
    for name in names:
        for _ in range(per):
            out.append(CATEGORIES[name](rng))
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def normalized(p):
    return regex.sub(r"\s+", " ", ftfy.fix_text(p)).strip().lower()


def record(tok, p):
    ids = tok(p, padding="max_length", max_length=MAX_LEN, truncation=True).input_ids
    assert len(ids) == MAX_LEN
    end = len(tok(p, max_length=MAX_LEN, truncation=True).input_ids)  # through the final eos
    assert ids[end - 1] == tok.eos_token_id and ids[end:] == [tok.pad_token_id] * (MAX_LEN - end)
    return {"prompt": p, "ids": ids[:end], "text": normalized(p)}


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(rows)} prompts")


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab, merges = os.path.join(APPLE, "vocab.json"), os.path.join(APPLE, "merges.txt")
    tok = CLIPTokenizer(vocab, merges)
    assert tok.fix_text is not None, "ftfy must be installed"
    ps = prompts()
    write(os.path.join(OUT, "token_ids.jsonl"), [record(tok, p) for p in ps])

    # SD 2.x: a tokenizer folder whose config makes "!" the pad token.
    with tempfile.TemporaryDirectory() as d:
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(OUT, "sd2", name), d)
        shutil.copy(vocab, d)
        shutil.copy(merges, d)
        tok2 = CLIPTokenizer.from_pretrained(d)
        assert tok2.pad_token_id == 0 and tok2.model_max_length == MAX_LEN
        rng = random.Random(2)
        extra = ["hello!", "wow!! amazing!!!", "!", "!!", "a ! b", "&#33;", "\uff01", "!<|endoftext|>!"]
        ps2 = extra + rng.sample(ps, 200) + [p.replace(" ", "! ", 2) for p in rng.sample(ps, 60)]
        write(os.path.join(OUT, "token_ids_sd2.jsonl"), [record(tok2, p) for p in ps2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
