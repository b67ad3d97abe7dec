#!/usr/bin/env python3
"""Builds the tiny random Stable Diffusion v1 pipeline used by the C++ tests: tests/fixtures/tiny-sd-v1/.

Structurally SD v1 (same module types, block types, names, tokenizer and scheduler config as
CompVis/stable-diffusion-v1-4), but a few channels wide, with randomly initialised weights
(fixed seeds, PyTorch/transformers default initialisers), saved with save_pretrained in diffusers
layout (fp32 safetensors), plus fp16 variants (*.fp16.safetensors) of the text encoder and UNet.

The safety checker's concept embeddings and thresholds are chosen (deterministically, from the
images the tiny pipeline itself makes) so that the pipeline goldens contain both a flagged and an
unflagged image: see choose_safety_concepts().

Run: python tests/reference/make_tiny_model.py [OUT_DIR]   (default tests/fixtures/tiny-sd-v1)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refcommon as rc  # noqa: E402
from make_clip_vocab import write_tokenizer_files  # noqa: E402

# ---- the tiny configs -------------------------------------------------------------------------

TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
    # SD v1.4's text encoder keeps CLIP's legacy special ids (eos 2 => pooled output uses argmax).
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)

UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(32, 32, 64, 64),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=8,  # as SD v1 stores it: diffusers reads it as 8 heads
    cross_attention_dim=32, norm_num_groups=8, norm_eps=1e-5, act_fn="silu",
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1,
    center_input_sample=False,
)

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=128, layers_per_block=1,
    block_out_channels=(16, 32, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=8, act_fn="silu", scaling_factor=0.18215,
)

SAFETY_TEXT_CONFIG = dict(  # unused by the checker, but part of its CLIPConfig
    vocab_size=1000, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32,
)
SAFETY_VISION_CONFIG = dict(
    hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=224,
    patch_size=32, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
)
SAFETY_PROJECTION_DIM = 32

SEEDS = dict(text_encoder=101, unet=102, vae=103, safety_checker=104, concepts=105)

# Safety concepts: which concept/special-care index becomes the discriminating one.
FLAG_CONCEPT = 3
FLAG_SPECIAL = 1
THRESH_MARGIN = 0.05  # the non-discriminating thresholds sit this far above every observed cosine


def build_tokenizer(tmp_dir):
    from transformers import CLIPTokenizer
    vocab, merges = write_tokenizer_files(tmp_dir, with_license=False)
    return CLIPTokenizer(vocab, merges, model_max_length=77, pad_token="<|endoftext|>")


def build_modules():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel

    torch.manual_seed(SEEDS["text_encoder"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).eval()
    torch.manual_seed(SEEDS["unet"])
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    torch.manual_seed(SEEDS["vae"])
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    torch.manual_seed(SEEDS["safety_checker"])
    clip_config = CLIPConfig(text_config=SAFETY_TEXT_CONFIG, vision_config=SAFETY_VISION_CONFIG,
                             projection_dim=SAFETY_PROJECTION_DIM)
    safety_checker = StableDiffusionSafetyChecker(clip_config).eval()
    # The checker leaves visual_projection at nn.Linear's default init and the concept tables at ones.
    return text_encoder, unet, vae, safety_checker


def build_scheduler():
    from diffusers import PNDMScheduler
    cfg = {k: v for k, v in rc.SD14_SCHEDULER_CONFIG.items() if not k.startswith("_")}
    return PNDMScheduler.from_config(cfg)


def build_feature_extractor():
    from transformers import CLIPImageProcessor
    cfg = {k: v for k, v in rc.SD14_PREPROCESSOR_CONFIG.items() if k != "feature_extractor_type"}
    return CLIPImageProcessor(**cfg)


def image_embeds(safety_checker, feature_extractor, images_uint8):
    """uint8 NHWC images -> (pixel_values, image_embeds) the way the pipeline feeds the checker."""
    from PIL import Image
    pil = [Image.fromarray(im) for im in images_uint8]
    pixel_values = feature_extractor(pil, return_tensors="pt").pixel_values
    with torch.no_grad():
        pooled = safety_checker.vision_model(pixel_values)[1]
        embeds = safety_checker.visual_projection(pooled)
    return pixel_values, embeds


def cosine(a, b):
    a = torch.nn.functional.normalize(a)
    b = torch.nn.functional.normalize(b)
    return (a @ b.t()).numpy().astype(np.float64)


def choose_safety_concepts(safety_checker, e_flag, e_clean):
    """Sets concept / special-care embeddings and thresholds so that an image whose embedding is
    e_flag is flagged (through concept FLAG_CONCEPT, after special-care concept FLAG_SPECIAL has
    added the 0.01 adjustment) and one whose embedding is e_clean is not.

    Every concept except the two discriminating ones is a seeded random direction whose threshold
    is THRESH_MARGIN above the largest cosine either image reaches (rounded up to 0.01). The
    discriminating direction is e_flag - e_clean; its thresholds sit halfway between the two
    images' cosines (rounded to 0.001), so both decisions have a wide margin.
    """
    g = torch.Generator().manual_seed(SEEDS["concepts"])
    d = SAFETY_PROJECTION_DIM
    concepts = torch.randn(17, d, generator=g)
    special = torch.randn(3, d, generator=g)
    direction = (e_flag - e_clean).reshape(1, d)
    concepts[FLAG_CONCEPT] = direction
    special[FLAG_SPECIAL] = direction
    both = torch.stack([e_flag.reshape(d), e_clean.reshape(d)])

    def thresholds(table, flag_idx):
        cos = cosine(both, table)  # [2, n]
        th = np.ceil((cos.max(axis=0) + THRESH_MARGIN) * 100) / 100
        hi, lo = cos[0, flag_idx], cos[1, flag_idx]
        assert hi - lo > 0.08, f"flagged/clean cosines too close: {hi} vs {lo}"
        th[flag_idx] = round((hi + lo) / 2, 3)
        return th

    concept_th = thresholds(concepts, FLAG_CONCEPT)
    special_th = thresholds(special, FLAG_SPECIAL)
    with torch.no_grad():
        safety_checker.concept_embeds.copy_(concepts)
        safety_checker.special_care_embeds.copy_(special)
        safety_checker.concept_embeds_weights.copy_(torch.tensor(concept_th, dtype=torch.float32))
        safety_checker.special_care_embeds_weights.copy_(torch.tensor(special_th, dtype=torch.float32))
    return dict(concept_thresholds=concept_th.tolist(), special_thresholds=special_th.tolist())


def make_pipeline(text_encoder, unet, vae, tokenizer, safety_checker, feature_extractor):
    from diffusers import StableDiffusionPipeline
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=build_scheduler(),
        safety_checker=safety_checker, feature_extractor=feature_extractor, requires_safety_checker=True)


def without_checker(pipe):
    """The same components with the safety checker off (toggling pipe.safety_checker would make
    diffusers forget the checker in model_index.json)."""
    from diffusers import StableDiffusionPipeline
    comps = dict(pipe.components)
    comps["safety_checker"] = None
    p = StableDiffusionPipeline(**comps, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


def run_batch_images(pipe):
    """The pipeline goldens' batch run (2 images per prompt), safety checker off -> uint8 NHWC."""
    out = without_checker(pipe)(rc.PROMPT, height=rc.HEIGHT, width=rc.WIDTH, num_inference_steps=rc.STEPS,
                                guidance_scale=rc.GUIDANCE, num_images_per_prompt=2, output_type="np",
                                generator=torch.Generator().manual_seed(rc.SEED))
    return rc.numpy_to_uint8(out.images)


def save_fp16_variant(module, folder, base_name):
    """Writes <base_name>.fp16.safetensors next to the fp32 file (diffusers / transformers variant naming)."""
    from safetensors.torch import save_file
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    save_file(sd, os.path.join(folder, base_name + ".fp16.safetensors"), metadata={"format": "pt"})


def main():
    out_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else rc.TINY_DIR)
    rc.set_torch_deterministic(1)
    tok_tmp = os.path.join(out_dir + ".tmp-tokenizer")
    shutil.rmtree(tok_tmp, ignore_errors=True)
    tokenizer = build_tokenizer(tok_tmp)
    text_encoder, unet, vae, safety_checker = build_modules()
    feature_extractor = build_feature_extractor()
    pipe = make_pipeline(text_encoder, unet, vae, tokenizer, safety_checker, feature_extractor)
    pipe.set_progress_bar_config(disable=True)

    images = run_batch_images(pipe)
    _, embeds = image_embeds(safety_checker, feature_extractor, images)
    print("batch images: mean", images.reshape(2, -1).mean(axis=1), "std", images.reshape(2, -1).std(axis=1))
    print("cosine between the two batch images' embeddings:", float(cosine(embeds[:1], embeds[1:])[0, 0]))
    th = choose_safety_concepts(safety_checker, embeds[0], embeds[1])
    print("safety thresholds:", th)

    shutil.rmtree(out_dir, ignore_errors=True)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    save_fp16_variant(text_encoder, os.path.join(out_dir, "text_encoder"), "model")
    save_fp16_variant(unet, os.path.join(out_dir, "unet"), "diffusion_pytorch_model")

    # Tokenizer: the canonical vocab.json / merges.txt built from OpenAI's BPE file (compact JSON,
    # identical to the Hugging Face / Apple exports) and OpenAI's MIT license.
    write_tokenizer_files(os.path.join(out_dir, "tokenizer"), with_license=True)
    shutil.rmtree(tok_tmp, ignore_errors=True)
    # feature_extractor: SD v1.4's own (legacy) preprocessor_config.json.
    rc.write_json(os.path.join(out_dir, "feature_extractor", "preprocessor_config.json"),
                  rc.SD14_PREPROCESSOR_CONFIG)
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(README.format(th=json.dumps(th)))

    total = 0
    for root, _, files in os.walk(out_dir):
        for name in sorted(files):
            p = os.path.join(root, name)
            total += os.path.getsize(p)
            print(f"{os.path.relpath(p, out_dir):60s} {os.path.getsize(p):>10d}")
    print(f"total {total} bytes")
    verify(out_dir)
    return 0


def verify(out_dir):
    """Reloads the fixture with diffusers (fp32 and fp16 variants) and checks that it runs."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel
    pipe = StableDiffusionPipeline.from_pretrained(out_dir)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(rc.PROMPT, height=rc.HEIGHT, width=rc.WIDTH, num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, rc.HEIGHT, rc.WIDTH, 3)
    assert pipe.safety_checker is not None and pipe.feature_extractor is not None
    te16 = CLIPTextModel.from_pretrained(os.path.join(out_dir, "text_encoder"), variant="fp16",
                                         torch_dtype=torch.float16)
    un16 = UNet2DConditionModel.from_pretrained(os.path.join(out_dir, "unet"), variant="fp16",
                                                torch_dtype=torch.float16)
    assert te16.dtype == torch.float16 and un16.dtype == torch.float16
    with open(os.path.join(out_dir, "text_encoder", "config.json")) as f:
        assert json.load(f)["torch_dtype"] == "float32"
    print("fixture reloads with diffusers: ok")


README = """# tiny-sd-v1: a tiny random Stable Diffusion v1 pipeline (test fixture)

Made by `tests/reference/make_tiny_model.py` (fixed seeds, pinned stack in
`tests/reference/requirements.txt`); regenerate with `tests/reference/regen.sh`.
Random weights: the images it makes are noise-like. Diffusers layout, `save_pretrained(safe_serialization=True)`:

- `model_index.json`: StableDiffusionPipeline, all seven components.
- `text_encoder/`: CLIPTextModel, hidden 32, 2 layers, 4 heads, intermediate 37, quick_gelu, 77 positions,
  the real 49408-token vocabulary. `model.safetensors` (fp32) and `model.fp16.safetensors` (fp16 variant).
- `tokenizer/`: CLIPTokenizer; `vocab.json` / `merges.txt` built from OpenAI's `bpe_simple_vocab_16e6.txt.gz`
  (`tests/reference/make_clip_vocab.py`, identical to the Hugging Face files), OpenAI's `LICENSE` (MIT).
- `unet/`: UNet2DConditionModel with SD v1's block types, block_out_channels (32, 32, 64, 64),
  layers_per_block 1, attention_head_dim 8 (= 8 heads), cross_attention_dim 32, norm_num_groups 8,
  sample_size 16. `diffusion_pytorch_model.safetensors` (fp32) and `diffusion_pytorch_model.fp16.safetensors`.
- `vae/`: AutoencoderKL, block_out_channels (16, 32, 32, 32), layers_per_block 1, norm_num_groups 8,
  latent_channels 4, sample_size 128, scaling_factor 0.18215 (VAE scale factor 8: 16x16 latents -> 128x128).
- `scheduler/`: PNDMScheduler with SD v1.4's scheduler config (as re-saved by diffusers 0.31).
- `safety_checker/`: StableDiffusionSafetyChecker with a tiny CLIPConfig (vision: hidden 32, 2 layers, 4 heads,
  intermediate 37, image 224, patch 32, projection 32). Concept tables: seeded random directions, except
  concept 3 and special-care concept 1, which point from the second to the first image of the pipeline
  goldens' batch run (seed 1234, 2 images per prompt); thresholds put those two at the midpoint of the two
  images' cosines and every other concept 0.05 above any cosine seen, so the first batch image is flagged
  (special-care 1 fires, adding the 0.01 adjustment, then concept 3) and the second is not.
  Thresholds: {th}
- `feature_extractor/preprocessor_config.json`: SD v1.4's own file (legacy CLIPFeatureExtractor form: int sizes;
  resize shortest edge 224 bicubic, center crop 224, CLIP mean/std).
"""

if __name__ == "__main__":
    sys.exit(main())
