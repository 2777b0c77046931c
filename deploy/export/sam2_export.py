#!/usr/bin/env python3
"""Exports SAM2 (the `sam2` package, 2.1 configs) as the segmentation service's two
TorchScript modules; the automatic mask generator runs in Rust on top of them.

    <out>.pt           the image encoder
        input   pixels [B, 3, S, S] float32 (S = 1024): SAM2's transform, done by the service —
                RGB / 255, antialiased bilinear resize to S×S (F.interpolate), ImageNet mean/std
        does    the Hiera trunk and FPN neck, the decoder's high-resolution projections, and adds
                `no_mem_embed` as SAM2ImagePredictor.set_image does
        output  (image_embed [B, D, S/16, S/16], high_res_0 [B, D/8, S/4, S/4],
                 high_res_1 [B, D/4, S/8, S/8]), D = 256 (64 with --tiny)
    <out>-decoder.pt   the prompt encoder and mask decoder
        input   (one image's image_embed, high_res_0, high_res_1 [1, …], point_coords [B, 1, 2] float32 in the
                 S×S frame, point_labels [B, 1] int32)
        output  (low_res_masks [B, 3, S/4, S/4] logits, iou_predictions [B, 3])
                (multimask output, as the automatic mask generator asks for)

Usage:

    deploy/export/sam2_export.py --checkpoint sam2.1_hiera_base_plus.pt --variant b+ --out models/sam2.pt
    deploy/export/sam2_export.py --random-init --tiny --out /tmp/sam2-tiny.pt \\
        --reference-images a.png --reference-out /tmp/ref \\
        --reference-amg '[{"points_per_side": 8, "pred_iou_thresh": 0.5}]'

`--reference-images` also runs the upstream `SAM2AutomaticMaskGenerator` on the same weights
with each of the `--reference-amg` settings and writes its masks (`<reference-out>/amg-N/`),
for the Rust parity test.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402

from PIL import Image  # noqa: E402
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator  # noqa: E402
from sam2.build_sam import build_sam2  # noqa: E402

VARIANTS = {
    "t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
# A Hiera of 16 channels and six blocks (global attention in two, as in the real ones; a
# stage's first, pooling block cannot be global): the same graph, small enough for CI.
TINY = [
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,2,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[2,4]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    # 64-wide prompt encoder, mask decoder and (unused for images) memory modules.
    "++model.image_encoder.neck.d_model=64",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=64",
    "++model.memory_attention.d_model=64",
    "++model.memory_attention.layer.d_model=64",
    "++model.memory_attention.layer.dim_feedforward=128",
    "++model.memory_attention.layer.self_attention.embedding_dim=64",
    "++model.memory_attention.layer.cross_attention.embedding_dim=64",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=32",
    "++model.memory_encoder.fuser.layer.dim=64",
    "++model.memory_encoder.mask_downsampler.embed_dim=64",
    "++model.memory_encoder.out_dim=32",
    "++model.memory_encoder.position_encoding.num_pos_feats=32",
]
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def transform(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """SAM2Transforms on a [0, 1] image: torchvision's Resize on a float tensor (bilinear,
    antialiased, half-pixel centres), then Normalize. The service does the same in Rust."""
    x = F.interpolate(pixels, (size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


class ImageEncoder(nn.Module):
    """SAM2ImagePredictor.set_image from a transformed image, keeping only what it uses."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.size = model.image_size
        self.image_encoder = model.image_encoder
        self.conv_s0 = model.sam_mask_decoder.conv_s0
        self.conv_s1 = model.sam_mask_decoder.conv_s1
        self.no_mem_embed = model.no_mem_embed

    def forward(self, pixels: torch.Tensor):
        fpn = self.image_encoder(pixels)["backbone_fpn"]
        high_res_0 = self.conv_s0(fpn[0])
        high_res_1 = self.conv_s1(fpn[1])
        embed = fpn[2] + self.no_mem_embed.view(1, -1, 1, 1)
        return embed, high_res_0, high_res_1


class MaskDecoder(nn.Module):
    """SAM2ImagePredictor._predict for a batch of single-point prompts, multimask."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = model.sam_mask_decoder

    def forward(self, image_embed, high_res_0, high_res_1, point_coords, point_labels):
        sparse, dense = self.prompt_encoder(points=(point_coords, point_labels), boxes=None,
                                            masks=None)
        low_res_masks, iou_predictions, _, _ = self.mask_decoder(
            image_embeddings=image_embed,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            # Each prompt gets its own copy of the image (a batch of one also works).
            repeat_image=True,
            high_res_features=[high_res_0, high_res_1],
        )
        return low_res_masks, iou_predictions


def randomise(model: nn.Module, seed: int) -> None:
    """A random init leaves some parameters at zero or constants (e.g. no_mem_embed); draw
    every parameter so each path of the graph shows in a parity test."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 0:
                continue
            scale = 0.04 if parameter.dim() > 1 else 0.2
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def write_reference(model, images, out: pathlib.Path, amg: dict) -> None:
    """The upstream automatic mask generator's masks on `images`, for the Rust parity test."""
    out.mkdir(parents=True, exist_ok=True)
    generator = SAM2AutomaticMaskGenerator(model, **amg)
    index = []
    for number, path in enumerate(images):
        image = np.asarray(Image.open(path).convert("RGB"))
        masks = generator.generate(image)
        stem = f"{number:02d}"
        stack = np.stack([m["segmentation"] for m in masks]) if masks else np.zeros((0,) + image.shape[:2], bool)
        (out / f"{stem}-masks.u8").write_bytes(stack.astype(np.uint8).tobytes())
        index.append({
            "image": str(path),
            "stem": stem,
            "height": image.shape[0],
            "width": image.shape[1],
            "count": len(masks),
            "predicted_iou": [float(m["predicted_iou"]) for m in masks],
            "stability_score": [float(m["stability_score"]) for m in masks],
            "bbox_xywh": [[float(v) for v in m["bbox"]] for m in masks],
        })
    (out / "index.json").write_text(json.dumps({"settings": amg, "images": index}, indent=2) + "\n")


def main() -> None:
    parser = common.export_parser(__doc__, "an upstream SAM2.1 .pt", "a 16-channel Hiera (tests)",
                                  "the encoder .pt; the decoder goes to <stem>-decoder.pt")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="t")
    parser.add_argument("--reference-amg", type=json.loads, default=[{}],
                        help="JSON list of SAM2AutomaticMaskGenerator settings, one reference "
                             "folder each ({} = the upstream defaults)")
    args = common.parse_export_args(parser)

    common.seeded(args.seed)
    overrides = TINY if args.tiny else []
    if args.checkpoint is not None:
        common.progress(f"loading {args.checkpoint}")
    model = build_sam2(VARIANTS[args.variant], ckpt_path=str(args.checkpoint) if args.checkpoint else None,
                       device="cpu", mode="eval", hydra_overrides_extra=overrides)
    if args.checkpoint is None:
        randomise(model, args.seed)
    model.eval()

    encoder = ImageEncoder(model).eval()
    decoder = MaskDecoder(model).eval()
    size = model.image_size
    common.progress(f"tracing the image encoder ({size}×{size})")
    generator = torch.Generator().manual_seed(7)
    pixels = transform(torch.rand(1, 3, 120, 160, generator=generator), size)
    traced_encoder = common.trace(encoder, (pixels,))
    with torch.no_grad():
        features = encoder(pixels)
    common.progress("tracing the mask decoder")

    def prompts(count: int):
        coords = torch.rand(count, 1, 2, generator=generator) * size
        return coords, torch.ones(count, 1, dtype=torch.int32)

    traced_decoder = common.trace(decoder, (*features, *prompts(2)), (*features, *prompts(5)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    decoder_path = args.out.with_name(args.out.stem + "-decoder.pt")
    traced_encoder.save(str(args.out))
    traced_decoder.save(str(decoder_path))
    embed, high_res_0, high_res_1 = features
    manifest = common.write_manifest(args.out, {
        "prior": "segmentation",
        "architecture": f"sam2.1-hiera-{args.variant}" + ("-tiny" if args.tiny else ""),
        "backend_name": "sam2",
        "parameters": sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in decoder.parameters()),
        "decoder": decoder_path.name,
        "input": {"size": size, "resize": "bilinear-antialias", "mean": MEAN, "std": STD},
        "outputs": {
            "image_embed": list(embed.shape[1:]),
            "high_res_0": list(high_res_0.shape[1:]),
            "high_res_1": list(high_res_1.shape[1:]),
            "masks_per_prompt": 3,
            "low_res_mask_side": size // 4,
        },
        "source": common.source_record(args.checkpoint, None if args.checkpoint else args.seed),
    })
    common.progress(f"wrote {args.out}, {decoder_path} and {manifest}")
    if args.reference_images:
        for number, amg in enumerate(args.reference_amg):
            write_reference(model, args.reference_images, args.reference_out / f"amg-{number}", amg)
        common.progress(f"reference masks for {len(args.reference_images)} images in {args.reference_out}")


if __name__ == "__main__":
    main()
