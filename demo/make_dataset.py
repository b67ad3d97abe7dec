#!/usr/bin/env python3
"""The "shapes" dataset of sdpal's demo model: 64x64 RGB pictures of one or two simple shapes on a plain
background, each with several English captions.

Deterministic: image i depends only on (--seed, i), so a bigger --count keeps the first images unchanged.

    python demo/make_dataset.py OUT --count N [--seed 0] [--two-shape-fraction 0.2]
        -> OUT/images.npy (uint8 [N, 64, 64, 3]), OUT/meta.jsonl (one JSON object per image: labels and
           captions), OUT/info.json (palette, shapes, positions, held-out combinations, settings)
    python demo/make_dataset.py --judge-golden DIR     -> DIR/judge.safetensors + DIR/labels.json
    python demo/make_dataset.py --eval-prompts FILE    -> the evaluation prompt list (demo/prompts_eval.txt)
    python demo/make_dataset.py --preview OUT.png      -> a contact sheet of the first 64 training images

Vocabulary
  shapes     circle, square, triangle (apex up), cross (a plus sign); canonical orientation, no rotation
  colors     11 named colors (PALETTE), jittered by up to +-JITTER per channel per image
  sizes      small (bounding box 10-14 px), large (22-28 px)
  positions  3 x 3 grid: top left, top, top right, left, center, right, bottom left, bottom, bottom right;
             the shape's area centroid is placed within +-2 px of the cell centre (16, 32 or 48 px)
  background any palette color other than the shape colors

Held-out combinations (never drawn in training images, single- or two-shape, in any phrasing):
  HELD_OUT_COLOR_SHAPE     8 (color, shape) pairs, two per shape
  HELD_OUT_SHAPE_POSITION  4 (shape, position) pairs, one per shape
The evaluation prompts test both kinds separately from the seen combinations.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4
JITTER = 6

# Named colors (sRGB). Pairwise distances are >= 90 so the judge can name a color unambiguously.
PALETTE = [
    ("red", (220, 40, 40)),
    ("orange", (240, 125, 15)),
    ("yellow", (245, 222, 40)),
    ("green", (40, 160, 60)),
    ("blue", (40, 80, 220)),
    ("purple", (135, 55, 185)),
    ("pink", (245, 140, 195)),
    ("brown", (120, 70, 30)),
    ("white", (245, 245, 245)),
    ("black", (25, 25, 25)),
    ("gray", (130, 130, 130)),
]
COLOR_NAMES = [n for n, _ in PALETTE]
COLOR_RGB = dict(PALETTE)
COLOR_WORDS = {"gray": ["gray", "grey"]}  # synonyms used in captions (first = canonical)

SHAPES = ["circle", "square", "triangle", "cross"]
SHAPE_WORDS = {"circle": ["circle"], "square": ["square"], "triangle": ["triangle"], "cross": ["cross", "plus sign"]}

SIZES = {"small": (10, 14), "large": (22, 28)}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}

CELL = {0: 16, 1: 32, 2: 48}
POSITIONS = {  # name -> (column, row) in the 3 x 3 grid
    "top left": (0, 0), "top": (1, 0), "top right": (2, 0),
    "left": (0, 1), "center": (1, 1), "right": (2, 1),
    "bottom left": (0, 2), "bottom": (1, 2), "bottom right": (2, 2),
}
POSITION_NAMES = list(POSITIONS)
# Phrases that place a shape (first = canonical); "{p}" phrases follow the shape noun.
POSITION_PHRASES = {
    "top left": ["at the top left", "in the top left corner", "in the upper left corner"],
    "top": ["at the top", "at the top of the image", "near the top"],
    "top right": ["at the top right", "in the top right corner", "in the upper right corner"],
    "left": ["on the left", "on the left side", "at the left"],
    "center": ["in the center", "in the middle", "in the centre"],
    "right": ["on the right", "on the right side", "at the right"],
    "bottom left": ["at the bottom left", "in the bottom left corner", "in the lower left corner"],
    "bottom": ["at the bottom", "at the bottom of the image", "near the bottom"],
    "bottom right": ["at the bottom right", "in the bottom right corner", "in the lower right corner"],
}

HELD_OUT_COLOR_SHAPE = [
    ("green", "circle"), ("pink", "circle"),
    ("yellow", "square"), ("gray", "square"),
    ("red", "triangle"), ("white", "triangle"),
    ("blue", "cross"), ("brown", "cross"),
]
HELD_OUT_SHAPE_POSITION = [
    ("circle", "top right"), ("square", "bottom left"), ("triangle", "right"), ("cross", "top"),
]
# Two-shape pictures use these position pairs (far enough apart that two large shapes never touch).
TWO_SHAPE_POSITIONS = [("left", "right"), ("top", "bottom"), ("top left", "bottom right"),
                       ("top right", "bottom left"), ("top left", "top right"), ("bottom left", "bottom right"),
                       ("top left", "bottom left"), ("top right", "bottom right")]


def is_held_out(color, shape, position):
    return (color, shape) in HELD_OUT_COLOR_SHAPE or (shape, position) in HELD_OUT_SHAPE_POSITION


def held_out_kind(color, shape, position):
    kinds = []
    if (color, shape) in HELD_OUT_COLOR_SHAPE:
        kinds.append("color_shape")
    if (shape, position) in HELD_OUT_SHAPE_POSITION:
        kinds.append("shape_position")
    return "+".join(kinds) if kinds else "seen"


# ---- drawing ------------------------------------------------------------------------------------

def shape_polygon(shape, s):
    """Outline of a shape with bounding box s x s, as (points relative to the area centroid) or None
    for the circle. Triangle: apex up, base s, height s. Cross: arms s/3 wide."""
    h = s / 2.0
    if shape == "square":
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        # centroid of an apex-up triangle of height s lies s/3 above the base
        top, base = -2.0 * s / 3.0, s / 3.0
        return [(0.0, top), (h, base), (-h, base)]
    if shape == "cross":
        a = s / 6.0
        return [(-a, -h), (a, -h), (a, -a), (h, -a), (h, a), (a, a), (a, h), (-a, h), (-a, a), (-h, a),
                (-h, -a), (-a, -a)]
    return None


def shape_extent(shape, s):
    """(up, down, left, right) extents of the shape from its centroid."""
    if shape == "triangle":
        return 2.0 * s / 3.0, s / 3.0, s / 2.0, s / 2.0
    return s / 2.0, s / 2.0, s / 2.0, s / 2.0


def place(shape, s, position, rng):
    """Centroid (x, y) in pixels for a shape of size s at a grid position, jittered by +-2 px and kept
    one pixel inside the image."""
    col, row = POSITIONS[position]
    cx = CELL[col] + rng.uniform(-2, 2)
    cy = CELL[row] + rng.uniform(-2, 2)
    up, down, left, right = shape_extent(shape, s)
    cx = min(max(cx, 1 + left), SIZE - 1 - right)
    cy = min(max(cy, 1 + up), SIZE - 1 - down)
    return cx, cy


def jitter(rgb, rng):
    return tuple(int(np.clip(c + rng.integers(-JITTER, JITTER + 1), 0, 255)) for c in rgb)


def render(bg_rgb, objects):
    """objects: list of (shape, size_px, cx, cy, rgb). Drawn at SUPERSAMPLE x and box-filtered down."""
    k = SUPERSAMPLE
    im = Image.new("RGB", (SIZE * k, SIZE * k), bg_rgb)
    d = ImageDraw.Draw(im)
    for shape, s, cx, cy, rgb in objects:
        if shape == "circle":
            r = s / 2.0
            d.ellipse([(cx - r) * k, (cy - r) * k, (cx + r) * k - 1, (cy + r) * k - 1], fill=rgb)
        else:
            pts = [((cx + x) * k, (cy + y) * k) for x, y in shape_polygon(shape, s)]
            d.polygon(pts, fill=rgb)
    return np.asarray(im.resize((SIZE, SIZE), Image.BOX), dtype=np.uint8)


# ---- captions -----------------------------------------------------------------------------------

def _pick(rng, words):
    return words[int(rng.integers(len(words)))]


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(rng, o, with_size=True, article=True):
    color = _pick(rng, COLOR_WORDS.get(o["color"], [o["color"]]))
    shape = _pick(rng, SHAPE_WORDS[o["shape"]])
    words = ([_pick(rng, SIZE_WORDS[o["size"]])] if with_size else []) + [color, shape]
    text = " ".join(words)
    return f"{_article(text)} {text}" if article else text


def _bg_word(rng, bg):
    return _pick(rng, COLOR_WORDS.get(bg, [bg]))


SINGLE_TEMPLATES = [  # (template, mentions size, mentions position, mentions background)
    ("{np} {pos} on {bga} {bg} background", True, True, True),
    ("{np} on {bga} {bg} background, {pos}", True, True, True),
    ("{bga} {bg} background with {np} {pos}", True, True, True),
    ("{npn} {pos}, {bg} background", True, True, True),
    ("a picture of {np} {pos} on {bga} {bg} background", True, True, True),
    ("{npn}, {bg} background", False, False, True),
    ("{np} on {bga} {bg} background", True, False, True),
    ("{np} {pos}", True, True, False),
    ("{np} {pos}", False, True, False),
    ("{np}", True, False, False),
    ("{np}", False, False, False),
]


def single_caption(rng, o, bg, template_idx):
    t, size, pos, _ = SINGLE_TEMPLATES[template_idx]
    np_ = _noun_phrase(rng, o, with_size=size)
    npn = _noun_phrase(rng, o, with_size=size, article=False)
    bgw = _bg_word(rng, bg)
    return t.format(np=np_, npn=npn, pos=_pick(rng, POSITION_PHRASES[o["position"]]), bg=bgw,
                    bga=_article(bgw))


def two_captions(rng, objs, bg, n):
    a, b = objs
    out = []
    for _ in range(n):
        kind = int(rng.integers(4))
        pa, pb = _pick(rng, POSITION_PHRASES[a["position"]]), _pick(rng, POSITION_PHRASES[b["position"]])
        with_size = bool(rng.integers(2))
        na, nb = _noun_phrase(rng, a, with_size), _noun_phrase(rng, b, with_size)
        bgw = _bg_word(rng, bg)
        if kind == 0:
            out.append(f"{na} {pa} and {nb} {pb} on {_article(bgw)} {bgw} background")
        elif kind == 1:
            out.append(f"{na} {pa} and {nb} {pb}")
        elif kind == 2:
            out.append(f"{na} and {nb}, {bgw} background")
        else:
            out.append(f"{na} and {nb}")
    return out


# ---- sampling -----------------------------------------------------------------------------------

def sample_object(rng, forbid_colors=(), position=None):
    while True:
        color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        pos = position or POSITION_NAMES[int(rng.integers(len(POSITION_NAMES)))]
        if color in forbid_colors or is_held_out(color, shape, pos):
            continue
        size = "small" if rng.integers(2) == 0 else "large"
        return dict(color=color, shape=shape, size=size, position=pos)


def sample_background(rng, fg_colors):
    while True:
        bg = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        if bg not in fg_colors:
            return bg


def make_item(seed, index, two_shape_fraction, captions_per_image=4):
    """One training example: (uint8 image, metadata dict)."""
    rng = np.random.default_rng([seed, index])
    if rng.random() < two_shape_fraction:
        pa, pb = TWO_SHAPE_POSITIONS[int(rng.integers(len(TWO_SHAPE_POSITIONS)))]
        if rng.integers(2):
            pa, pb = pb, pa
        a = sample_object(rng, position=pa)
        b = sample_object(rng, forbid_colors=(a["color"],), position=pb)
        objs = [a, b]
    else:
        objs = [sample_object(rng)]
    bg = sample_background(rng, [o["color"] for o in objs])
    drawn = []
    for o in objs:
        s = float(rng.uniform(*SIZES[o["size"]]))
        cx, cy = place(o["shape"], s, o["position"], rng)
        o["size_px"], o["cx"], o["cy"] = round(s, 2), round(cx, 2), round(cy, 2)
        drawn.append((o["shape"], s, cx, cy, jitter(COLOR_RGB[o["color"]], rng)))
    image = render(jitter(COLOR_RGB[bg], rng), drawn)
    if len(objs) == 1:
        full = [i for i, t in enumerate(SINGLE_TEMPLATES) if all(t[1:])]
        chosen = [full[int(rng.integers(len(full)))]]
        rest = [i for i in range(len(SINGLE_TEMPLATES)) if i not in chosen]
        chosen += [rest[j] for j in rng.permutation(len(rest))[:captions_per_image - 1]]
        captions = [single_caption(rng, objs[0], bg, i) for i in chosen]
    else:
        captions = two_captions(rng, objs, bg, captions_per_image)
    return image, dict(index=index, background=bg, objects=objs, captions=captions)


def info_dict(seed=None, count=None, two_shape_fraction=None):
    return dict(
        image_size=SIZE, palette={n: list(c) for n, c in PALETTE}, shapes=SHAPES, sizes=SIZES,
        positions=POSITION_NAMES, held_out_color_shape=HELD_OUT_COLOR_SHAPE,
        held_out_shape_position=HELD_OUT_SHAPE_POSITION, seed=seed, count=count,
        two_shape_fraction=two_shape_fraction, jitter=JITTER)


def make_dataset(out, count, seed, two_shape_fraction):
    os.makedirs(out, exist_ok=True)
    images = np.lib.format.open_memmap(os.path.join(out, "images.npy.tmp"), mode="w+", dtype=np.uint8,
                                       shape=(count, SIZE, SIZE, 3))
    with open(os.path.join(out, "meta.jsonl.tmp"), "w", encoding="utf-8") as f:
        for i in range(count):
            img, meta = make_item(seed, i, two_shape_fraction)
            images[i] = img
            f.write(json.dumps(meta) + "\n")
            if (i + 1) % 5000 == 0:
                print(f"{i + 1}/{count}", flush=True)
    images.flush()
    del images
    os.replace(os.path.join(out, "images.npy.tmp"), os.path.join(out, "images.npy"))
    os.replace(os.path.join(out, "meta.jsonl.tmp"), os.path.join(out, "meta.jsonl"))
    with open(os.path.join(out, "info.json"), "w") as f:
        json.dump(info_dict(seed, count, two_shape_fraction), f, indent=1)
    print(f"wrote {count} images to {out}")


# ---- the judge's golden set and the evaluation prompts ------------------------------------------

JUDGE_GOLDEN_COUNT = 64
JUDGE_GOLDEN_SEED = 20240601


def make_judge_golden(out_dir, count=JUDGE_GOLDEN_COUNT, seed=JUDGE_GOLDEN_SEED):
    """`count` (64) clean single-shape images, every shape 16 times, positions, sizes and colors cycled so all
    appear (held-out combinations are allowed here: the judge is not trained)."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        position = POSITION_NAMES[i % len(POSITION_NAMES)]
        size = "small" if (i // 4) % 2 == 0 else "large"
        color = COLOR_NAMES[i % len(COLOR_NAMES)]
        bg = COLOR_NAMES[(i * 7 + 3 + int(rng.integers(1, len(COLOR_NAMES) - 1))) % len(COLOR_NAMES)]
        if bg == color:
            bg = COLOR_NAMES[(COLOR_NAMES.index(color) + 5) % len(COLOR_NAMES)]
        s = float(rng.uniform(*SIZES[size]))
        cx, cy = place(shape, s, position, rng)
        images.append(render(jitter(COLOR_RGB[bg], rng), [(shape, s, cx, cy, jitter(COLOR_RGB[color], rng))]))
        labels.append(dict(color=color, shape=shape, size=size, position=position, background=bg))
    os.makedirs(out_dir, exist_ok=True)
    save_file({"images": np.stack(images)}, os.path.join(out_dir, "judge.safetensors"))
    head = dict(made_by="demo/make_dataset.py --judge-golden", tensor="images: uint8 [N, 64, 64, 3] RGB",
                palette={n: list(c) for n, c in PALETTE}, shapes=SHAPES, positions=POSITION_NAMES)
    with open(os.path.join(out_dir, "labels.json"), "w") as f:
        f.write("{\n" + "".join(f" {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items()))
        f.write(' "images": [\n' + ",\n".join("  " + json.dumps(l) for l in labels) + "\n ]\n}\n")
    print(f"wrote {len(images)} judge golden images to {out_dir}")


EVAL_SEED = 777


def make_eval_prompts(path, seen=160, held=80):
    """Tab-separated: split, color, shape, size, position, background, prompt. Every prompt names all
    five attributes. 'seen' prompts use combinations drawn in training (the exact picture may be new),
    held-out ones contain a held-out (color, shape) or (shape, position) pair."""
    rng = np.random.default_rng(EVAL_SEED)
    rows = []
    full = [i for i, t in enumerate(SINGLE_TEMPLATES) if all(t[1:])]

    def add(split, color, shape, size, position):
        bg = sample_background(rng, [color])
        o = dict(color=color, shape=shape, size=size, position=position)
        prompt = single_caption(rng, o, bg, full[len(rows) % len(full)])
        rows.append((split, color, shape, size, position, bg, prompt))

    while len(rows) < seen:
        o = sample_object(rng)
        add("seen", o["color"], o["shape"], o["size"], o["position"])
    for k in range(held // 2):  # held-out (color, shape) pairs at seen positions
        color, shape = HELD_OUT_COLOR_SHAPE[k % len(HELD_OUT_COLOR_SHAPE)]
        while True:
            pos = POSITION_NAMES[int(rng.integers(len(POSITION_NAMES)))]
            if (shape, pos) not in HELD_OUT_SHAPE_POSITION:
                break
        add("held_color_shape", color, shape, ["small", "large"][k % 2], pos)
    for k in range(held - held // 2):  # held-out (shape, position) pairs with seen colors
        shape, pos = HELD_OUT_SHAPE_POSITION[k % len(HELD_OUT_SHAPE_POSITION)]
        while True:
            color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
            if (color, shape) not in HELD_OUT_COLOR_SHAPE:
                break
        add("held_shape_position", color, shape, ["small", "large"][(k // 4) % 2], pos)
    with open(path, "w", encoding="utf-8") as f:
        f.write("# sdpal demo evaluation prompts (demo/make_dataset.py --eval-prompts); tab-separated:\n")
        f.write("# split\tcolor\tshape\tsize\tposition\tbackground\tprompt\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"wrote {len(rows)} prompts to {path}")


def preview(path, count=64, seed=0, two_shape_fraction=0.2):
    cols = 8
    rows = (count + cols - 1) // cols
    sheet = np.zeros((rows * (SIZE + 2), cols * (SIZE + 2), 3), np.uint8)
    for i in range(count):
        img, meta = make_item(seed, i, two_shape_fraction)
        r, c = divmod(i, cols)
        sheet[r * (SIZE + 2):r * (SIZE + 2) + SIZE, c * (SIZE + 2):c * (SIZE + 2) + SIZE] = img
        print(i, meta["captions"][0])
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="dataset folder")
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--two-shape-fraction", type=float, default=0.2)
    ap.add_argument("--judge-golden", metavar="DIR")
    ap.add_argument("--eval-prompts", metavar="FILE")
    ap.add_argument("--preview", metavar="PNG")
    a = ap.parse_args(argv)
    if a.judge_golden:
        make_judge_golden(a.judge_golden)
    if a.eval_prompts:
        make_eval_prompts(a.eval_prompts)
    if a.preview:
        preview(a.preview, seed=a.seed, two_shape_fraction=a.two_shape_fraction)
    if a.out:
        make_dataset(a.out, a.count, a.seed, a.two_shape_fraction)
    elif not (a.judge_golden or a.eval_prompts or a.preview):
        ap.error("give OUT (and --count) or one of --judge-golden / --eval-prompts / --preview")
    return 0


if __name__ == "__main__":
    sys.exit(main())
