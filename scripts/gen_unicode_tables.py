#!/usr/bin/env python3
"""Writes src/model/unicode_data.cpp: the Unicode and ftfy tables the CLIP tokenizer needs.

Everything is measured from the pinned reference stack itself (tests/reference/requirements.txt),
so the C++ side reproduces what transformers' CLIPTokenizer + ftfy see, not what a Unicode
standard says they should see:

- character classes of the tokenizer regex as the `regex` module matches them with IGNORECASE
  (found by trying every code point), `\\s` of the `regex` module (whitespace_clean), Python's
  str.isspace (str.strip) and Python `re`'s \\w \\s \\d (ftfy's own regexes);
- str.lower() (full mappings), and the Cased / Case_Ignorable properties that str.lower() uses
  for the final-sigma rule, derived by asking str.lower() itself;
- canonical decompositions, combining classes and primary composites from `unicodedata`
  (Python 3.11: Unicode 14.0), checked against unicodedata.normalize;
- ftfy 6.3.1 data: HTML entities, width map, ligatures, the single-byte charmaps it tries,
  and the character sets of its mojibake detectors (BADNESS_RE, UTF8_DETECTOR_RE), extracted
  from the compiled patterns and checked against them on random strings.

Run with the reference venv:  /work/venv-ref/bin/python scripts/gen_unicode_tables.py
Deterministic: the same stack writes the same file.
"""
import codecs
import html
import os
import random
import re
import re._constants as sre_c
import re._parser as sre_p
import sys
import unicodedata

import ftfy
import ftfy.bad_codecs  # noqa: F401  (registers the sloppy codecs)
import regex
from ftfy import chardata
from ftfy.badness import BADNESS_RE

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(REPO, "src", "model", "unicode_data.cpp")
MAXCP = 0x110000


def ranges_of(pred):
    """Sorted (first, last) ranges of code points where pred(cp) is true."""
    out = []
    start = None
    for cp in range(MAXCP):
        if pred(cp):
            if start is None:
                start = cp
        elif start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, MAXCP - 1))
    return out


def matcher(pattern, flags=0, module=regex):
    rx = module.compile(pattern, flags)
    return lambda cp: rx.match(chr(cp)) is not None


# ---------------------------------------------------------------------------------------------
# Code point properties
# ---------------------------------------------------------------------------------------------
def is_cased(cp):
    c = chr(cp)
    return c.islower() or c.isupper() or c.istitle()


def is_case_ignorable(cp):
    # Python's final-sigma rule: SIGMA is final when preceded by a cased letter (skipping
    # case-ignorables) and not followed by one. Probe str.lower() with the character.
    c = chr(cp)
    if cp == 0x3A3:
        return False
    if is_cased(cp):
        return ("A\u03a3" + c).lower()[1] == "\u03c2"
    return ("A" + c + "\u03a3").lower()[-1] == "\u03c2"


PROPS = [  # (C++ name, predicate): bit i of the property word
    ("kTokLetter", matcher(r"[\p{L}]", regex.IGNORECASE)),
    ("kTokNumber", matcher(r"[\p{N}]", regex.IGNORECASE)),
    ("kTokOther", matcher(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)),
    ("kRegexSpace", matcher(r"\s")),
    ("kPySpace", lambda cp: chr(cp).isspace()),
    ("kReWord", matcher(r"\w", 0, re)),
    ("kReSpace", matcher(r"\s", 0, re)),
    ("kReDigit", matcher(r"\d", 0, re)),
    ("kCased", is_cased),
    ("kCaseIgnorable", is_case_ignorable),
]


def check_literal_case_folding():
    """tokenizer.cpp matches the pattern's ASCII literals case-insensitively by hand, assuming
    that besides ASCII case only U+017F (long s) matches 's'. Verify that with `regex`."""
    for ch in sorted(set("<|startoftext|><|endoftext|>'s't're've'm'll'd")):
        rx = regex.compile(regex.escape(ch), regex.IGNORECASE)
        hits = {cp for cp in range(MAXCP) if rx.match(chr(cp))}
        expect = {ord(ch), ord(ch.upper())} | ({0x17F} if ch == "s" else set())
        assert hits == expect, (ch, sorted(map(hex, hits)))


def prop_table():
    runs = []  # (first, bits)
    prev = None
    for cp in range(MAXCP):
        bits = 0
        for i, (_, pred) in enumerate(PROPS):
            if pred(cp):
                bits |= 1 << i
        if bits != prev:
            runs.append((cp, bits))
            prev = bits
    return runs


# ---------------------------------------------------------------------------------------------
# Case mapping
# ---------------------------------------------------------------------------------------------
def lower_tables():
    singles = {}
    multi = []
    for cp in range(MAXCP):
        if cp == 0x3A3:  # context dependent: handled by the C++ final-sigma rule
            continue
        low = chr(cp).lower()
        if low == chr(cp):
            continue
        if len(low) == 1:
            singles[cp] = ord(low) - cp
        else:
            multi.append((cp, [ord(x) for x in low]))
    # Runs of (first, last, step, delta): A-Z is one run, Latin Extended-A pairs another.
    runs = []
    cps = sorted(singles)
    i = 0
    while i < len(cps):
        first = cps[i]
        delta = singles[first]
        step = 1
        if i + 1 < len(cps) and singles[cps[i + 1]] == delta and cps[i + 1] - first in (1, 2):
            step = cps[i + 1] - first
        last = first
        j = i + 1
        while j < len(cps) and cps[j] == last + step and singles[cps[j]] == delta:
            last = cps[j]
            j += 1
        runs.append((first, last, step, delta))
        i = j
    return runs, multi


# ---------------------------------------------------------------------------------------------
# Normalization (NFC)
# ---------------------------------------------------------------------------------------------
def canonical_mapping(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def full_decomposition(cp):
    m = canonical_mapping(cp)
    if m is None:
        return [cp]
    out = []
    for x in m:
        out.extend(full_decomposition(x))
    return out


def nfc_tables():
    ccc_runs = []
    for cp in range(MAXCP):
        c = unicodedata.combining(chr(cp))
        if c:
            if ccc_runs and ccc_runs[-1][1] == cp - 1 and ccc_runs[-1][2] == c:
                ccc_runs[-1][1] = cp
            else:
                ccc_runs.append([cp, cp, c])
    decomp = []
    compose = []
    for cp in range(MAXCP):
        m = canonical_mapping(cp)
        if m is None:
            continue
        assert not (0xAC00 <= cp <= 0xD7A3)
        full = full_decomposition(cp)
        assert unicodedata.normalize("NFD", chr(cp)) == "".join(map(chr, sorted_canonically(full)))
        decomp.append((cp, full))
        if len(m) == 2 and unicodedata.normalize("NFC", chr(m[0]) + chr(m[1])) == chr(cp):
            compose.append((m[0], m[1], cp))
    compose.sort()
    return ccc_runs, decomp, compose


def sorted_canonically(cps):
    out = list(cps)
    # Stable sort of each run of non-starters by combining class.
    i = 0
    while i < len(out):
        if unicodedata.combining(chr(out[i])) == 0:
            i += 1
            continue
        j = i
        while j < len(out) and unicodedata.combining(chr(out[j])) != 0:
            j += 1
        out[i:j] = sorted(out[i:j], key=lambda c: unicodedata.combining(chr(c)))
        i = j
    return out


# ---------------------------------------------------------------------------------------------
# ftfy data
# ---------------------------------------------------------------------------------------------
def charmaps():
    """The single-byte encodings ftfy's fix_encoding tries, bytes 0x80-0xFF, plus byte 0x1A."""
    out = []
    for enc in chardata.CHARMAP_ENCODINGS:
        low = bytes(range(0x80)).decode(enc)
        sloppy = enc.startswith("sloppy")
        for b in range(0x80):
            expect = "\ufffd" if (sloppy and b == 0x1A) else chr(b)
            assert low[b] == expect, (enc, b)
        high = bytes(range(0x80, 0x100)).decode(enc)
        assert len(high) == 128 and all(ord(c) < 0x10000 for c in high)
        full = low + high
        assert len(set(full)) == 256, enc  # a bijection, so encoding is its inverse
        for c in set(full):
            assert full.index(c) == c.encode(enc)[0]
        out.append((enc, sloppy, [ord(c) for c in high]))
    return out


def set_ranges(items, space, word):
    """Code point ranges of a parsed character class (list of sre opcodes)."""
    cps = set()
    negate = False
    for op, av in items:
        if op is sre_c.LITERAL:
            cps.add(av)
        elif op is sre_c.RANGE:
            cps.update(range(av[0], av[1] + 1))
        elif op is sre_c.CATEGORY and av is sre_c.CATEGORY_SPACE:
            cps.update(space)
        elif op is sre_c.CATEGORY and av is sre_c.CATEGORY_WORD:
            cps.update(word)
        elif op is sre_c.NEGATE:
            negate = True
        else:
            raise ValueError(f"unsupported class item {op} {av}")
    if negate:
        return frozenset(cp for cp in range(MAXCP) if cp not in cps)
    return frozenset(cps)


def element_set(op, av, space, word):
    if op is sre_c.LITERAL:
        return frozenset([av])
    if op is sre_c.IN:
        return set_ranges(av, space, word)
    raise ValueError(f"unsupported element {op}")


ANY = "any"  # '.' : anything but '\n'


def badness_branches(space, word):
    """BADNESS_RE as a list of (anchored, [set...]) alternatives; `\\s?` is expanded into two."""
    tree = sre_p.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
    assert len(tree.data) == 1 and tree.data[0][0] is sre_c.BRANCH
    branches = []
    for br in tree.data[0][1][1]:
        variants = [(False, [])]
        for op, av in br.data:
            if op is sre_c.AT:
                assert av is sre_c.AT_BEGINNING
                variants = [(True, s) for _, s in variants]
            elif op is sre_c.ANY:
                variants = [(a, s + [ANY]) for a, s in variants]
            elif op is sre_c.MAX_REPEAT:
                lo, hi, sub = av
                assert (lo, hi) == (0, 1) and len(sub.data) == 1
                inner = element_set(*sub.data[0], space, word)
                variants = [(a, s) for a, s in variants] + [(a, s + [inner]) for a, s in variants]
            else:
                e = element_set(op, av, space, word)
                variants = [(a, s + [e]) for a, s in variants]
        branches.extend(variants)
    return branches


def clue_set(name, space, word):
    tree = sre_p.parse("[" + chardata.UTF8_CLUES[name] + "]")
    assert len(tree.data) == 1
    return element_set(*tree.data[0], space, word)


def emulate_is_bad(text, branches):
    for start in range(len(text)):
        for anchored, elems in branches:
            if anchored and start != 0:
                continue
            if start + len(elems) > len(text):
                continue
            if all((text[start + k] != "\n") if e is ANY else (ord(text[start + k]) in e)
                   for k, e in enumerate(elems)):
                return True
    return False


def check_badness(branches, rng):
    pool = sorted({cp for _, els in branches for e in els if e is not ANY for cp in e if cp < 0x3000})
    pool += [ord(c) for c in "aZ \n\t.,!?Ã"]
    for _ in range(30000):
        s = "".join(chr(rng.choice(pool)) for _ in range(rng.randint(1, 6)))
        assert emulate_is_bad(s, branches) == bool(BADNESS_RE.search(s)), repr(s)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
class Writer:
    def __init__(self):
        self.parts = []

    def line(self, s=""):
        self.parts.append(s + "\n")

    def array(self, decl, items, per_line=8):
        self.line(decl + " = {")
        for i in range(0, len(items), per_line):
            self.line("    " + " ".join(x + "," for x in items[i:i + per_line]))
        self.line("};")


def hx(v):
    return f"0x{v:X}"


def cxx_str(s):
    out = []
    for b in s.encode("utf-8"):
        if 0x20 <= b < 0x7F and chr(b) not in '"\\?':
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def main():
    rng = random.Random(1234)
    w = Writer()
    w.line("// GENERATED by scripts/gen_unicode_tables.py -- do not edit by hand.")
    w.line(f"// Python {sys.version.split()[0]} (unicodedata {unicodedata.unidata_version}), "
           f"regex {regex.__version__}, ftfy {ftfy.__version__}.")
    w.line('#include "model/unicode_data.h"')
    w.line()
    w.line("#include <algorithm>")
    w.line("#include <utility>")
    w.line()
    w.line("namespace sdpal::unicode {")
    w.line("namespace {")
    w.line()

    pool = []  # shared code point pool for all variable-length strings

    def add_seq(seq):
        off = len(pool)
        pool.extend(seq)
        return off, len(seq)

    # Properties.
    print("properties...", file=sys.stderr)
    check_literal_case_folding()
    runs = prop_table()
    names = [n for n, _ in PROPS]
    w.line("// Property bits from the first code point of each run to the next run's first.")
    w.array("const PropRun kPropRuns[]", [f"{{{hx(a)},{hx(b)}}}" for a, b in runs])
    w.line()

    # Lowercase.
    print("case...", file=sys.stderr)
    lruns, lmulti = lower_tables()
    w.line("// str.lower(): code points first..last (every `step`) map to cp + delta.")
    w.array("const LowerRun kLowerRuns[]", [f"{{{hx(a)},{hx(b)},{s},{d}}}" for a, b, s, d in lruns],
            per_line=6)
    multi_items = []
    for cp, seq in lmulti:
        off, n = add_seq(seq)
        multi_items.append(f"{{{hx(cp)},{off},{n}}}")
    w.array("const SeqEntry kLowerMulti[]", multi_items)
    w.line()

    # NFC.
    print("normalization...", file=sys.stderr)
    ccc_runs, decomp, compose = nfc_tables()
    w.array("const CccRun kCccRuns[]", [f"{{{hx(a)},{hx(b)},{c}}}" for a, b, c in ccc_runs], per_line=6)
    dec_items = []
    for cp, seq in decomp:
        off, n = add_seq(seq)
        dec_items.append(f"{{{hx(cp)},{off},{n}}}")
    w.line("// Full (recursive) canonical decompositions; Hangul syllables are algorithmic.")
    w.array("const SeqEntry kDecomp[]", dec_items, per_line=6)
    w.line("// Primary composites, sorted by (first, second).")
    w.array("const Composite kCompose[]", [f"{{{hx(a)},{hx(b)},{hx(c)}}}" for a, b, c in compose],
            per_line=5)
    w.line()

    # ftfy: width map and ligatures.
    print("ftfy...", file=sys.stderr)
    width_items = []
    for cp in sorted(chardata.WIDTH_MAP):
        off, n = add_seq([ord(c) for c in chardata.WIDTH_MAP[cp]])
        width_items.append(f"{{{hx(cp)},{off},{n}}}")
    w.line("// ftfy fix_character_width (WIDTH_MAP).")
    w.array("const SeqEntry kWidth[]", width_items, per_line=6)
    lig_items = []
    for cp in sorted(chardata.LIGATURES):
        off, n = add_seq([ord(c) for c in chardata.LIGATURES[cp]])
        lig_items.append(f"{{{hx(cp)},{off},{n}}}")
    w.line("// ftfy fix_latin_ligatures (LIGATURES).")
    w.array("const SeqEntry kLigatures[]", lig_items, per_line=6)
    w.line()

    # HTML entities, sorted by name (byte order) for binary search.
    ents = sorted((k[1:-1], v) for k, v in chardata.HTML_ENTITIES.items())
    assert all(k.startswith("&") and k.endswith(";") for k in chardata.HTML_ENTITIES)
    ent_items = []
    for name, val in ents:
        off, n = add_seq([ord(c) for c in val])
        ent_items.append(f"{{{cxx_str(name)},{off},{n}}}")
    w.line("// ftfy's HTML_ENTITIES: html5 names ending in ';' plus upper-cased Latin ones.")
    w.array("const Entity kEntities[]", ent_items, per_line=4)
    w.line()
    invalid_refs = []
    for num, val in sorted(html._invalid_charrefs.items()):
        assert len(val) == 1
        invalid_refs.append(f"{{{hx(num)},{hx(ord(val))}}}")
    w.line("// html.unescape: numeric references replaced by another character (_invalid_charrefs).")
    w.array("const CharPair kInvalidCharrefs[]", invalid_refs)
    w.line("// html.unescape: numeric references that decode to nothing (_invalid_codepoints).")
    inv = sorted(html._invalid_codepoints)
    inv_runs = []
    for cp in inv:
        if inv_runs and inv_runs[-1][1] == cp - 1:
            inv_runs[-1][1] = cp
        else:
            inv_runs.append([cp, cp])
    w.array("const Range kInvalidCodepoints[]", [f"{{{hx(a)},{hx(b)}}}" for a, b in inv_runs])
    w.line()

    # Charmaps.
    cms = charmaps()
    w.line("// Bytes 0x80-0xFF of the single-byte encodings ftfy.fix_encoding tries, in its order.")
    for i, (enc, sloppy, high) in enumerate(cms):
        w.array(f"const char16_t kCharmap{i}[128]", [hx(c) for c in high], per_line=16)
    w.line()

    # Mojibake detector sets.
    space = {cp for cp in range(MAXCP) if re.match(r"\s", chr(cp))}
    word = {cp for cp in range(MAXCP) if re.match(r"\w", chr(cp))}
    branches = badness_branches(space, word)
    check_badness(branches, rng)
    sets = []
    set_index = {}

    word_set, space_set = frozenset(word), frozenset(space)

    def set_id(s):
        if s is ANY:
            return "kAnyButNewline"
        if s == word_set:
            return "kReWordSet"
        if s == space_set:
            return "kReSpaceSet"
        if s not in set_index:
            set_index[s] = len(sets)
            sets.append(s)
        return str(set_index[s])

    branch_items = []
    for anchored, elems in branches:
        ids = [set_id(e) for e in elems]
        assert len(ids) <= kMaxBranch
        branch_items.append("{" + ("true" if anchored else "false") + f",{len(ids)},{{" + ",".join(ids) + "}}")
    clue_names = ["utf8_first_of_2", "utf8_first_of_3", "utf8_first_of_4", "utf8_continuation",
                  "utf8_continuation_strict"]
    clue_ids = [set_id(clue_set(n, space, word)) for n in clue_names]
    range_pool = []
    set_items = []
    for s in sets:
        rs = []
        for cp in sorted(s):
            if rs and rs[-1][1] == cp - 1:
                rs[-1][1] = cp
            else:
                rs.append([cp, cp])
        set_items.append(f"{{{len(range_pool)},{len(rs)}}}")
        range_pool.extend(rs)
    w.line("// Character sets of ftfy's BADNESS_RE and UTF8_DETECTOR_RE, as ranges.")
    w.array("const Range kSetRanges[]", [f"{{{hx(a)},{hx(b)}}}" for a, b in range_pool])
    w.array("const SetRef kSets[]", set_items)
    w.line("// BADNESS_RE's alternatives (`\\s?` expanded): one code point set per position.")
    w.array("const BadBranch kBadBranches[]", branch_items, per_line=4)
    w.line()

    w.array("const char32_t kPool[]", [hx(c) for c in pool], per_line=12)
    w.line()
    w.line("}  // namespace")
    w.line()
    w.line(LOOKUPS.replace("@CLUES@", ", ".join(clue_ids)).replace(
        "@CHARMAPS@", ",\n    ".join(f'{{"{enc}", {"true" if sl else "false"}, kCharmap{i}}}'
                                     for i, (enc, sl, _) in enumerate(cms))))
    w.line("}  // namespace sdpal::unicode")

    text = "".join(w.parts)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {OUT}: {len(text)} bytes; {len(runs)} property runs, {len(lruns)} lower runs, "
          f"{len(decomp)} decompositions, {len(compose)} composites, {len(ents)} entities, "
          f"{len(branches)} badness branches, {len(sets)} sets", file=sys.stderr)


kMaxBranch = 8

# Lookup functions emitted after the tables (kept here so the generated file is self-contained).
LOOKUPS = r"""
namespace {
template <class T, size_t N>
constexpr size_t count_of(const T (&)[N]) { return N; }

std::u32string_view pool_view(uint32_t off, uint32_t len) { return {kPool + off, len}; }

template <class T, size_t N>
const T* find_cp(const T (&table)[N], char32_t c) {
  const T* it = std::lower_bound(table, table + N, c, [](const T& e, char32_t v) { return e.cp < v; });
  return (it != table + N && it->cp == c) ? it : nullptr;
}
}  // namespace

uint16_t props(char32_t c) {
  if (c >= 0x110000) return 0;
  const PropRun* it = std::upper_bound(kPropRuns, kPropRuns + count_of(kPropRuns), c,
                                       [](char32_t v, const PropRun& r) { return v < r.first; });
  return (it - 1)->bits;
}

int to_lower(char32_t c, char32_t out[3]) {
  if (c < 0x80) {
    out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return 1;
  }
  if (const SeqEntry* m = find_cp(kLowerMulti, c)) {
    for (uint32_t i = 0; i < m->len; ++i) out[i] = kPool[m->off + i];
    return int(m->len);
  }
  const LowerRun* it = std::upper_bound(kLowerRuns, kLowerRuns + count_of(kLowerRuns), c,
                                        [](char32_t v, const LowerRun& r) { return v < r.first; });
  out[0] = c;
  if (it != kLowerRuns) {
    const LowerRun& r = *(it - 1);
    if (c <= r.last && (c - r.first) % r.step == 0) out[0] = char32_t(int64_t(c) + r.delta);
  }
  return 1;
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const CccRun* it = std::upper_bound(kCccRuns, kCccRuns + count_of(kCccRuns), c,
                                      [](char32_t v, const CccRun& r) { return v < r.first; });
  if (it == kCccRuns) return 0;
  const CccRun& r = *(it - 1);
  return c <= r.last ? r.ccc : 0;
}

std::u32string_view canonical_decomposition(char32_t c) {
  if (c < 0xC0) return {};
  const SeqEntry* e = find_cp(kDecomp, c);
  return e ? pool_view(e->off, e->len) : std::u32string_view{};
}

char32_t primary_composite(char32_t a, char32_t b) {
  const Composite* end = kCompose + count_of(kCompose);
  const Composite* it = std::lower_bound(kCompose, end, std::pair{a, b}, [](const Composite& e, std::pair<char32_t, char32_t> v) {
    return e.first != v.first ? e.first < v.first : e.second < v.second;
  });
  return (it != end && it->first == a && it->second == b) ? it->composite : 0;
}

std::u32string_view ftfy_width(char32_t c) {
  if (c < 0x3000) return {};
  const SeqEntry* e = find_cp(kWidth, c);
  return e ? pool_view(e->off, e->len) : std::u32string_view{};
}

std::u32string_view ftfy_ligature(char32_t c) {
  if (c < 0x100) return {};
  const SeqEntry* e = find_cp(kLigatures, c);
  return e ? pool_view(e->off, e->len) : std::u32string_view{};
}

bool html_entity(std::string_view name, std::u32string_view* value) {
  const Entity* end = kEntities + count_of(kEntities);
  const Entity* it = std::lower_bound(kEntities, end, name, [](const Entity& e, std::string_view v) {
    return std::string_view(e.name) < v;
  });
  if (it == end || std::string_view(it->name) != name) return false;
  *value = pool_view(it->off, it->len);
  return true;
}

std::u32string html_numeric_reference(uint64_t num) {
  for (const CharPair& p : kInvalidCharrefs)
    if (p.from == num) return std::u32string(1, p.to);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  for (const Range& r : kInvalidCodepoints)
    if (num >= r.first && num <= r.last) return U"";
  return std::u32string(1, char32_t(num));
}

const Charmap kCharmaps[kNumCharmaps] = {
    @CHARMAPS@};

bool set_contains(int set, char32_t c) {
  if (set == kAnyButNewline) return c != U'\n';
  if (set == kReWordSet) return (props(c) & kReWord) != 0;
  if (set == kReSpaceSet) return (props(c) & kReSpace) != 0;
  const SetRef& s = kSets[set];
  const Range* b = kSetRanges + s.off;
  const Range* e = b + s.len;
  const Range* it = std::upper_bound(b, e, c, [](char32_t v, const Range& r) { return v < r.first; });
  return it != b && c <= (it - 1)->last;
}

std::span<const BadBranch> badness_branches() { return {kBadBranches, count_of(kBadBranches)}; }

const int kUtf8ClueSets[5] = {@CLUES@};
"""

if __name__ == "__main__":
    main()
