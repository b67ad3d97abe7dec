"""Converts the tiny test model's safety checker (tests/fixtures/tiny-sd-v1/safety_checker) into a Core ML program
the way Apple's ml-stable-diffusion converter does (python_coreml_stable_diffusion/torch2coreml.py,
convert_safety_checker), and writes goldens for sdpal's loader of Apple's SafetyChecker models.

    OMP_NUM_THREADS=1 /work/venv-coreml-torch/bin/python tests/reference/make_coreml_safety_checker.py

Run it after tests/reference/make_coreml_tiny.py (which clears tests/fixtures/tiny-sd-v1-coreml/); regen.sh does.
Under another interpreter it re-executes itself with $SDPAL_COREML_PYTHON when set, else prints that it is skipped
and exits 0 (as make_coreml_tiny.py does). coremltools converts and saves on Linux; nothing is predicted. Seconds.
Deterministic: a rerun reproduces every file byte for byte.

Apple's program (facts from torch2coreml.py and SafetyChecker.swift, re-implemented here):
- inputs clip_input fp16 [1, 3, 224, 224] (the CLIP-normalized image), images fp16 [1, H, W, 3] (the decoded
  images, filtered by the program; Apple's Swift pipeline passes a dummy), adjustment fp16 [1] (added to the
  "special care" scores; Swift passes 0);
- outputs (fp32) filtered_images [1, H, W, 3], has_nsfw_concepts [1, 1, 1, 1], concept_scores [1, 17];
- the forward is diffusers' StableDiffusionSafetyChecker without its Python loop: cosine similarities of the
  projected CLIP image embedding with the 3 special-care and 17 concept embeddings, minus their thresholds,
  + 0.01 on every concept score when a special-care score is > 0; flagged images are zeroed. Unlike diffusers,
  scores are not rounded to 3 decimals.
coremltools folds the constant part: the normalized concept / special-care embeddings and their negated
thresholds become the weight and bias of two `linear` ops without a module path, as do the class and position
embeddings (an `expand_dims` const and an `add` const); sdpal finds them by following the graph.

The tiny checker's thresholds are set here (not the fixture's random ones) so that the first golden image is
flagged (one special-care and one concept score > 0) and the second is not, with margins far above fp16 error;
its LayerNorm weights and biases are randomized as make_coreml_tiny.py does.

Writes
- tests/fixtures/tiny-sd-v1-coreml/{fp16,palettized6}/Stable_Diffusion_version_tiny-sd-v1_safety_checker.mlpackage
  (palettized6: ct.optimize.coreml.palettize_weights, 6-bit k-means, weight_threshold 2048: the patch embedding);
- tests/goldens/coreml/tiny_model/safety_checker.safetensors: `pixels` [2, 224, 224, 3] (channels-last, the
  feature extractor's output; fp16), and per variant V `V.concept_scores` [2, 17], `V.special_scores` [2, 3]
  (unrounded, fp32), `V.has_nsfw` [2], `V.image_embeds` [2, 32], computed in fp32 by diffusers' module with every
  weight replaced by the value the saved program holds (named constants; the folded ones are fp16 of the
  originals, which is what the program holds up to the fold's own rounding).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreml_stack  # noqa: E402

coreml_stack.require("make_coreml_safety_checker.py")

import shutil
import warnings
from types import MethodType

import numpy as np
import torch
import torch.nn.functional as F

import coremltools as ct
from safetensors.numpy import save_file
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

import make_coreml_tiny as tiny  # noqa: E402  (same stack; its helpers: palettize, deterministic packages)
from refcommon import TINY_DIR, set_torch_deterministic  # noqa: E402

OUT_DIR = tiny.OUT_DIR
GOLDEN = os.path.join(tiny.GOLDEN_DIR, "safety_checker.safetensors")
VARIANTS = [("fp16", None), ("palettized6", 6)]
IMAGE_HW = 64  # the tiny pipeline's images: the `images` input's H and W

torch.set_grad_enabled(False)


def apple_forward(self, clip_input, images, adjustment):
    """Apple's forward_coreml (torch2coreml.py): vectorized, no rounding, flagged images zeroed."""
    def cosine(a, b):
        return F.normalize(a) @ F.normalize(b).transpose(0, 1)

    emb = self.visual_projection(self.vision_model(clip_input)[1])
    special = cosine(emb, self.special_care_embeds) - self.special_care_embeds_weights + adjustment
    care = special.gt(0).float().sum(dim=1).gt(0).float()
    cos = cosine(emb, self.concept_embeds)
    scores = (cos - self.concept_embeds_weights) + (care * 0.01).unsqueeze(1).expand(-1, cos.shape[1])
    nsfw = scores.gt(0).float().sum(dim=1).gt(0)[:, None, None, None]
    mask, _ = torch.broadcast_tensors(nsfw, images)
    images[mask] = 0.0
    return images, nsfw.float(), scores


def scores(checker, clip_input):
    """(image embeds, special scores, concept scores, flags) as diffusers' StableDiffusionSafetyChecker.forward
    reports them, unrounded, fp32: its loop adds 0.01 to every special-care score after the first positive one,
    and to every concept score when any special-care score is positive."""
    emb = checker.visual_projection(checker.vision_model(clip_input)[1])
    ne = F.normalize(emb)
    special = ne @ F.normalize(checker.special_care_embeds).T - checker.special_care_embeds_weights
    for i in range(special.shape[0]):
        adj = 0.0
        for k in range(special.shape[1]):
            special[i, k] += adj
            if special[i, k] > 0:
                adj = 0.01
    adj = (special > 0).any(dim=1, keepdim=True).float() * 0.01
    concept = ne @ F.normalize(checker.concept_embeds).T - checker.concept_embeds_weights + adj
    return emb, special, concept, (concept > 0).any(dim=1)


def set_thresholds(checker, clip_input):
    """Thresholds that flag image 0 and not image 1: for the special-care and the concept embedding that
    separate the two images most, the midpoint of their cosines; every other threshold above both cosines."""
    emb = F.normalize(checker.visual_projection(checker.vision_model(clip_input)[1]))
    for embeds, weights in ((checker.special_care_embeds, checker.special_care_embeds_weights),
                            (checker.concept_embeds, checker.concept_embeds_weights)):
        cos = emb @ F.normalize(embeds).T  # [2, K]
        k = int(torch.argmax(cos[0] - cos[1]))
        assert cos[0, k] - cos[1, k] > 0.1, "the two golden images are too alike for this checker"
        w = cos.max(dim=0).values + 0.05
        w[k] = (cos[0, k] + cos[1, k]) / 2
        weights.copy_(w)


def golden_inputs():
    g = torch.Generator().manual_seed(20)
    x = torch.randn((2, 3, 224, 224), generator=g)
    # Two different images: one mostly bright red-ish, one dark blue-ish (the CLIP-normalized range).
    x[0, 0] += 1.0
    x[1, 2] += 1.0
    x[1, 0] -= 1.0
    return torch.from_numpy(tiny.fp16_exact(x.numpy()))


def convert(checker):
    wrapper = StableDiffusionSafetyChecker.from_pretrained(os.path.join(TINY_DIR, "safety_checker")).eval()
    wrapper.load_state_dict(checker.state_dict())
    wrapper.forward = MethodType(apple_forward, wrapper)
    ins = [torch.zeros(1, 3, 224, 224), torch.zeros(1, IMAGE_HW, IMAGE_HW, 3), torch.zeros(1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, ins)
        m = ct.convert(
            traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
            inputs=[ct.TensorType(name=n, shape=t.shape, dtype=np.float16)
                    for n, t in zip(("clip_input", "images", "adjustment"), ins)],
            outputs=[ct.TensorType(name=n, dtype=np.float32)
                     for n in ("filtered_images", "has_nsfw_concepts", "concept_scores")],
            compute_precision=ct.precision.FLOAT16, compute_units=ct.ComputeUnit.CPU_ONLY, skip_model_load=True)
    m.author = "sdpal test fixture: tiny random model tests/fixtures/tiny-sd-v1"
    m.license = tiny.LICENSE
    m.version = tiny.MODEL_VERSION
    m.short_description = tiny.DESCRIPTION
    m.input_description["clip_input"] = "The normalized image input tensor resized to (224x224) in channels-first (BCHW) format"
    m.input_description["images"] = f"Output of the vae_decoder ({IMAGE_HW}x{IMAGE_HW}) in channels-last (BHWC) format"
    m.input_description["adjustment"] = "Bias added to the concept scores"
    m.output_description["filtered_images"] = "The input `images`, zeroed where sensitive content was detected"
    m.output_description["has_nsfw_concepts"] = "Whether the safety checker model found sensitive content"
    m.output_description["concept_scores"] = "Concept scores before thresholding at zero"
    return m


def program_state_dict(pkg, checker):
    """checker's state dict with each parameter the program holds under its module path replaced by that value
    (decoded LUT for palettized ones); the rest (folded by the converter) as fp16 of the original."""
    vals = tiny.program_weights(tiny.load_program(pkg))
    by_base = {tiny.base_name(n): v for n, (_, v) in vals.items()}
    sd = {}
    named = 0
    for key, t in checker.state_dict().items():
        v = by_base.get(key.replace(".", "_"))
        if v is not None:
            sd[key] = torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(t.shape))
            named += 1
        else:
            sd[key] = torch.from_numpy(t.numpy().astype(np.float16).astype(np.float32)) if t.is_floating_point() else t
    return sd, named


def main():
    set_torch_deterministic(1)
    checker = StableDiffusionSafetyChecker.from_pretrained(os.path.join(TINY_DIR, "safety_checker")).eval()
    tiny.maybe_randomize_norms(checker, 4)
    clip_input = golden_inputs()
    set_thresholds(checker, clip_input)
    _, _, _, flags = scores(checker, clip_input)
    assert flags.tolist() == [True, False], flags

    goldens = {"pixels": clip_input.permute(0, 2, 3, 1).contiguous().numpy()}
    m = convert(checker)
    for variant, nbits in VARIANTS:
        folder = os.path.join(OUT_DIR, variant)
        if not os.path.isdir(folder):
            raise SystemExit(f"{folder} does not exist: run make_coreml_tiny.py first")
        pkg = os.path.join(folder, tiny.package_name("safety_checker"))
        if os.path.exists(pkg):
            shutil.rmtree(pkg)
        (tiny.palettize(m, nbits) if nbits else m).save(pkg)
        tiny.make_package_deterministic(pkg)
        sd, named = program_state_dict(pkg, checker)
        ref = StableDiffusionSafetyChecker.from_pretrained(os.path.join(TINY_DIR, "safety_checker")).eval()
        ref.load_state_dict(sd)
        emb, special, concept, flags = scores(ref, clip_input)
        assert flags.tolist() == [True, False], (variant, flags)
        goldens[f"{variant}.image_embeds"] = emb.numpy()
        goldens[f"{variant}.special_scores"] = special.numpy()
        goldens[f"{variant}.concept_scores"] = concept.numpy()
        goldens[f"{variant}.has_nsfw"] = flags.float().numpy()
        print(f"{variant}: {pkg} ({named} named parameters); concept margin "
              f"{concept[0].max().item():+.3f} / {concept[1].max().item():+.3f}")
    # pixels are fp16-exact: stored as fp16 (half the bytes); the rest fp32.
    save_file({k: np.ascontiguousarray(v, dtype=np.float16 if k == "pixels" else np.float32)
               for k, v in sorted(goldens.items())}, GOLDEN,
              metadata={"source": "tests/reference/make_coreml_safety_checker.py"})
    print("wrote", GOLDEN)
    with open(os.path.join(OUT_DIR, "SAFETY_CHECKER.md"), "w") as f:
        f.write(README)


README = """# Safety checker packages

`fp16/` and `palettized6/` also hold `Stable_Diffusion_version_tiny-sd-v1_safety_checker.mlpackage`: the tiny
model's safety checker converted as Apple's `torch2coreml.py` (`convert_safety_checker`) does, by
`tests/reference/make_coreml_safety_checker.py` (run after `make_coreml_tiny.py`, which clears this folder).
Inputs `clip_input` [1, 3, 224, 224], `images` [1, 64, 64, 3], `adjustment` [1] (fp16); outputs `filtered_images`,
`has_nsfw_concepts`, `concept_scores` (fp32). Its thresholds are set by the script so that the first golden image
(`tests/goldens/coreml/tiny_model/safety_checker.safetensors`) is flagged and the second is not; LayerNorm
parameters randomized (seed 4). License: as `tests/fixtures/tiny-sd-v1`.
"""


if __name__ == "__main__":
    main()
