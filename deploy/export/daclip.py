#!/usr/bin/env python3
"""Exports DA-CLIP (ViT-B/32 CLIP + its controller) as the degradation service's TorchScript
module.

The module's contract (read by services/degradation, backend = "torchscript"):

    input   pixels [B, 3, 224, 224] float32, CLIP-preprocessed (the service does it in Rust:
            bicubic resize of the shorter side to 224 as PIL does, centre crop, CLIP mean/std)
    output  (F_c [B, 512], F_d [B, 512], probabilities [B, 5])

F_c is the image embedding of CLIP steered by the controller, F_d the controller's own
embedding (DA-CLIP's `encode_image(image, control=True)`, unnormalised as IR-SDE consumes
them). The probabilities are DA-CLIP's zero-shot degradation classifier restricted to the
mesh's five kinds: softmax(100 * F_d/|F_d| . T/|T|) over the text embeddings of "noisy",
"hazy", "rainy", "motion-blurry" and "low-light", computed once here and stored in the module.

DA-CLIP is not on PyPI; the architecture is rebuilt here on `open-clip-torch` with the same
parameter names as the upstream checkpoint (`daclip_ViT-B-32.pt`), so that file loads as is:

    deploy/export/daclip.py --checkpoint daclip_ViT-B-32.pt --out models/daclip.pt

Without a checkpoint (none can be downloaded in CI), `--random-init` builds the architecture
with seeded random weights; `--tiny` shrinks the towers for tests (the 512-wide embeddings the
mesh carries stay). `--reference-images` also writes the eager model's outputs on those images,
preprocessed by open_clip's own transform, for the Rust parity test.
"""

from __future__ import annotations

import copy
import json
import pathlib
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402

import open_clip  # noqa: E402
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD  # noqa: E402
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg  # noqa: E402
from PIL import Image  # noqa: E402

# The mesh's degradation kinds (DegradationKind::ALL order) and DA-CLIP's word for each.
KINDS = ["noise", "haze", "rain", "blur", "low_light"]
KIND_WORDS = ["noisy", "hazy", "rainy", "motion-blurry", "low-light"]
EMBEDDING_WIDTH = 512
IMAGE_SIZE = 224

# open_clip's ViT-B-32 (what DA-CLIP fine-tunes) and a tiny variant for tests.
FULL = {
    "vision": CLIPVisionCfg(image_size=IMAGE_SIZE, layers=12, width=768, patch_size=32),
    "text": CLIPTextCfg(context_length=77, vocab_size=49408, width=512, heads=8, layers=12),
}
TINY = {
    "vision": CLIPVisionCfg(image_size=IMAGE_SIZE, layers=2, width=64, head_width=32, patch_size=32),
    "text": CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
}


class ControlTransformer(nn.Module):
    """DA-CLIP's controller: a copy of the vision transformer whose every block also emits a
    zero-initialised linear projection of its output (added to CLIP's blocks in reverse)."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        self.layers = transformer.layers
        self.width = transformer.width
        self.zero_modules = nn.ModuleList(
            [nn.Linear(self.width, self.width, bias=True) for _ in range(self.layers)]
        )
        for module in self.zero_modules:
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)


class DaClip(nn.Module):
    """Parameter names as in upstream DA-CLIP: `clip`, `visual` (= clip.visual),
    `visual_control` (a copy of the visual tower with a ControlTransformer) and `logit_scale`."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip
        self.visual = clip.visual
        self.visual_control = copy.deepcopy(clip.visual)
        self.visual_control.transformer = ControlTransformer(self.visual_control.transformer)
        self.logit_scale = copy.deepcopy(clip.logit_scale)


def run_blocks(transformer: nn.Module, x: torch.Tensor, zero_modules=None, control=None):
    """open_clip's Transformer.forward, plus DA-CLIP's two additions: collect each block's
    zero-module output (controller) or add the controller's outputs, last first (CLIP)."""
    batch_first = getattr(transformer, "batch_first", True)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    hiddens = []
    blocks = transformer.resblocks
    for index, block in enumerate(blocks):
        x = block(x, attn_mask=None)
        if zero_modules is not None:
            hiddens.append(zero_modules[index](x))
        if control is not None:
            x = x + control[len(blocks) - 1 - index]
    if not batch_first:
        x = x.transpose(0, 1)
    return x, hiddens


def vision_forward(visual: nn.Module, pixels: torch.Tensor, zero_modules=None, control=None):
    x = visual._embeds(pixels)
    transformer = visual.transformer
    if isinstance(transformer, ControlTransformer):
        transformer = transformer.transformer
    x, hiddens = run_blocks(transformer, x, zero_modules, control)
    pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled, hiddens


class DegradationPrior(nn.Module):
    """The traced module: only the two vision towers and the five kinds' text embeddings."""

    def __init__(self, daclip: DaClip, kind_text: torch.Tensor):
        super().__init__()
        self.visual = daclip.visual
        self.visual_control = daclip.visual_control
        self.register_buffer("kind_text", F.normalize(kind_text, dim=-1))

    def forward(self, pixels: torch.Tensor):
        zero_modules = self.visual_control.transformer.zero_modules
        degradation, hiddens = vision_forward(self.visual_control, pixels, zero_modules=zero_modules)
        content, _ = vision_forward(self.visual, pixels, control=hiddens)
        logits = 100.0 * F.normalize(degradation, dim=-1) @ self.kind_text.t()
        return content, degradation, logits.softmax(dim=-1)


def build(tiny: bool, quick_gelu: bool) -> DaClip:
    shape = TINY if tiny else FULL
    clip = CLIP(EMBEDDING_WIDTH, shape["vision"], shape["text"], quick_gelu=quick_gelu)
    return DaClip(clip)


def load_checkpoint(model: DaClip, path: pathlib.Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    needed = [k for k in missing if k.startswith(("visual.", "visual_control.", "clip.visual.",
                                                   "clip.transformer.", "clip.token_embedding",
                                                   "clip.positional_embedding", "clip.ln_final",
                                                   "clip.text_projection"))]
    if needed:
        sys.exit(f"{path} is not a DA-CLIP ViT-B/32 checkpoint: missing {needed[:5]} "
                 f"(and {max(0, len(needed) - 5)} more)")
    if unexpected:
        print(f"warning: {len(unexpected)} unexpected keys ignored, e.g. {unexpected[:3]}")


def randomise_controller(model: DaClip, seed: int) -> None:
    """A random init leaves the zero modules at zero, so the controller would not steer CLIP
    at all and a parity test could not see that path; draw them small and random instead."""
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.visual_control.transformer.zero_modules:
        with torch.no_grad():
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.02)
            module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.02)


def preprocess_transform():
    """open_clip's evaluation transform: what the Rust service reproduces."""
    return open_clip.image_transform(
        IMAGE_SIZE, is_train=False, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD
    )


def write_reference(prior: nn.Module, images: list[pathlib.Path], out: pathlib.Path) -> None:
    """Eager outputs on `images` preprocessed by open_clip, one raw float32 file per tensor."""
    out.mkdir(parents=True, exist_ok=True)
    transform = preprocess_transform()
    index = []
    for number, path in enumerate(images):
        pixels = transform(Image.open(path).convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            content, degradation, probabilities = prior(pixels)
        stem = f"{number:02d}"
        common.write_f32(out / f"{stem}-pixels.f32", pixels)
        common.write_f32(out / f"{stem}-content.f32", content)
        common.write_f32(out / f"{stem}-degradation.f32", degradation)
        common.write_f32(out / f"{stem}-probabilities.f32", probabilities)
        index.append({"image": str(path), "stem": stem})
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def main() -> None:
    parser = common.export_parser(__doc__, "upstream daclip_ViT-B-32.pt", "tiny towers (tests)")
    parser.add_argument("--quick-gelu", action="store_true", help="OpenAI-style QuickGELU towers")
    args = common.parse_export_args(parser)

    common.seeded(args.seed)
    model = build(args.tiny, args.quick_gelu)
    if args.checkpoint is not None:
        common.progress(f"loading {args.checkpoint}")
        load_checkpoint(model, args.checkpoint)
    else:
        randomise_controller(model, args.seed)
    model.eval()

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        kind_text = model.clip.encode_text(tokenizer(KIND_WORDS))
    prior = DegradationPrior(model, kind_text).eval()

    common.progress("tracing")
    example = (torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(7)),)
    traced = common.trace(prior, example)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(args.out))
    vision = (TINY if args.tiny else FULL)["vision"]
    manifest = common.write_manifest(args.out, {
        "prior": "degradation",
        "architecture": "daclip-vit-b-32" + ("-tiny" if args.tiny else ""),
        "backend_name": "daclip",
        "parameters": sum(p.numel() for p in prior.parameters()),
        "vision": {"layers": vision.layers, "width": vision.width, "patch_size": vision.patch_size},
        "input": {
            "size": IMAGE_SIZE,
            "resize": "shorter-side-bicubic-pil",
            "crop": "centre",
            "mean": list(OPENAI_DATASET_MEAN),
            "std": list(OPENAI_DATASET_STD),
        },
        "outputs": {"content": EMBEDDING_WIDTH, "degradation": EMBEDDING_WIDTH, "kinds": KINDS},
        "kind_words": KIND_WORDS,
        "source": common.source_record(args.checkpoint, None if args.checkpoint else args.seed),
    })
    common.progress(f"wrote {args.out} and {manifest}")
    if args.reference_images:
        write_reference(prior, args.reference_images, args.reference_out)
        common.progress(f"reference outputs for {len(args.reference_images)} images in {args.reference_out}")


if __name__ == "__main__":
    main()
