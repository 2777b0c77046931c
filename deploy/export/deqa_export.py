#!/usr/bin/env python3
"""Exports DeQA-Score (mPLUG-Owl2: ViT-L/14 at 448, visual abstractor, LLaMA-2-7B with the
modality-adaptive module) as the quality service's TorchScript module.

The module's contract (read by services/quality, backend = "torchscript"):

    input   pixels [B, 3, 448, 448] float32: the image padded to a square with the mean colour
            (122, 116, 104), the shorter side resized to 448 with Pillow's bicubic filter, CLIP
            mean/std (the service does this in Rust)
    output  (score [B], F_q [B, hidden]): F_q is the language model's last hidden state (after
            the final RMSNorm) at the position that predicts the quality word, for DeQA-Score
            4096 wide; score = softmax over the logits of "excellent", "good", "fair", "poor",
            "bad" · [5, 4, 3, 2, 1]

The prompt is fixed ("USER: How would you rate the quality of this image?\\n<|image|>\\nASSISTANT:
The quality of the image is"), so its token ids are stored in the module, the image's 65 visual
tokens are spliced in at its fixed position, and only the five level words' rows of the output
head are kept (the 32000-row head is not exported).

DeQA-Score is not on PyPI; the architecture is written here from its code with the parameter
names of the released checkpoint (`model.vision_model.*`, `model.visual_abstractor.*`,
`model.layers.*` with `multiway.{0,1}` text/image branches, `lm_head`), so its safetensors load
by name:

    deploy/export/deqa_export.py --checkpoint DeQA-Score-Mix3/ --out models/deqa.pt

`--random-init --tiny` builds the same graph with small widths for tests; `--reference-images`
writes the eager model's outputs, preprocessed with Pillow, for the Rust parity test.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402

from PIL import Image  # noqa: E402

IMAGE_SIZE = 448
PATCH = 14
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
PAD_COLOUR = tuple(int(m * 255) for m in MEAN)  # (122, 116, 104)
# LLaMA-2 tokenizer ids of the prompt around the image, and of the five level words.
PROMPT_BEFORE = [1, 3148, 1001, 29901, 1128, 723, 366, 6554, 278, 11029, 310, 445, 1967, 29973, 13]
PROMPT_AFTER = [29871, 13, 22933, 9047, 13566, 29901, 450, 11029, 310, 278, 1967, 338]
LEVEL_WORDS = ["excellent", "good", "fair", "poor", "bad"]
LEVEL_IDS = [15129, 1781, 6534, 6460, 4319]
LEVEL_WEIGHTS = [5.0, 4.0, 3.0, 2.0, 1.0]

FULL = dict(vision=dict(hidden=1024, layers=24, heads=16, mlp=4096, eps=1e-6),
            abstractor=dict(hidden=1024, layers=6, heads=16, mlp=2816, queries=64),
            llm=dict(hidden=4096, layers=32, heads=32, mlp=11008, vocab=32000, eps=1e-5,
                     rope_theta=10000.0))
TINY = dict(vision=dict(hidden=32, layers=2, heads=2, mlp=64, eps=1e-6),
            abstractor=dict(hidden=32, layers=2, heads=2, mlp=48, queries=64),
            llm=dict(hidden=64, layers=2, heads=4, mlp=128, vocab=32000, eps=1e-5,
                     rope_theta=10000.0))


# --- vision encoder -------------------------------------------------------------------------

class VisionEmbeddings(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        grid = IMAGE_SIZE // PATCH
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.patch_embed = nn.Conv2d(3, hidden, PATCH, PATCH, bias=False)
        self.position_embedding = nn.Parameter(torch.zeros(1, grid * grid + 1, hidden))
        self.pre_layernorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, pixels):
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pre_layernorm(x + self.position_embedding)


class VisionAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query_key_value = nn.Linear(hidden, 3 * hidden)
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x):
        b, s, d = x.shape
        # The fused projection is interleaved per head: [head][q, k, v][head_dim].
        q, k, v = self.query_key_value(x).reshape(b, s, self.heads, 3, d // self.heads).permute(3, 0, 2, 1, 4)
        attention = (q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5).softmax(dim=-1)
        return self.dense((attention @ v).permute(0, 2, 1, 3).reshape(b, s, d))


class QuickGelu(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class VisionMlp(nn.Module):
    def __init__(self, hidden: int, mlp: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp)
        self.act = QuickGelu()
        self.fc2 = nn.Linear(mlp, hidden)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class VisionLayer(nn.Module):
    def __init__(self, hidden, heads, mlp, eps):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(hidden, eps=eps)
        self.self_attn = VisionAttention(hidden, heads)
        self.post_attention_layernorm = nn.LayerNorm(hidden, eps=eps)
        self.mlp = VisionMlp(hidden, mlp)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Layers(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class VisionModel(nn.Module):
    def __init__(self, hidden, layers, heads, mlp, eps):
        super().__init__()
        self.embeddings = VisionEmbeddings(hidden, eps)
        self.encoder = Layers([VisionLayer(hidden, heads, mlp, eps) for _ in range(layers)])
        self.post_layernorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, pixels):
        x = self.embeddings(pixels)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.post_layernorm(x)


# --- visual abstractor ----------------------------------------------------------------------

def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """MAE's 2D table with a leading zero row for the class token."""
    axis = np.arange(grid, dtype=np.float32)
    coords = np.stack(np.meshgrid(axis, axis), axis=0)  # MAE: meshgrid(grid_w, grid_h)
    table = np.concatenate([sincos_1d(dim // 2, coords[0]), sincos_1d(dim // 2, coords[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), table], axis=0)


class AbstractorAttention(nn.Module):
    def __init__(self, hidden, heads, queries, grid):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.register_buffer("q_pos_embed", torch.from_numpy(
            sincos_1d(hidden, np.arange(queries, dtype=np.float32))).float())
        self.register_buffer("k_pos_embed", torch.from_numpy(sincos_2d(hidden, grid)).float())

    def split(self, x):
        b, s, d = x.shape
        return x.view(b, s, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, queries, keys_values):
        positions = torch.cat([self.q_pos_embed, self.k_pos_embed], dim=0)
        q = self.split(self.query(queries + self.q_pos_embed))
        k = self.split(self.key(keys_values + positions))
        v = self.split(self.value(keys_values))
        attention = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1)
        out = (attention @ v).transpose(1, 2)
        return out.reshape(out.shape[0], out.shape[1], -1)


class AbstractorMlp(nn.Module):
    def __init__(self, hidden, mlp):
        super().__init__()
        self.w1 = nn.Linear(hidden, mlp)
        self.w2 = nn.Linear(mlp, hidden)
        self.w3 = nn.Linear(hidden, mlp)
        self.ffn_ln = nn.LayerNorm(mlp, eps=1e-6)

    def forward(self, x):
        return self.w2(self.ffn_ln(F.silu(self.w1(x)) * self.w3(x)))


class AbstractorOutput(nn.Module):
    def __init__(self, hidden, mlp):
        super().__init__()
        self.out_proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = AbstractorMlp(hidden, mlp)


class CrossAttention(nn.Module):
    def __init__(self, hidden, heads, mlp, queries, grid):
        super().__init__()
        self.attention = AbstractorAttention(hidden, heads, queries, grid)
        self.output = AbstractorOutput(hidden, mlp)
        self.norm1 = nn.LayerNorm(hidden)
        self.normk = nn.LayerNorm(hidden)

    def forward(self, x, image):
        q = self.norm1(x)
        kv = torch.cat([q, self.normk(image)], dim=1)
        # The residual is the normalised query, as in mPLUG-Owl2.
        x = q + self.output.out_proj(self.attention(q, kv))
        return x + self.output.mlp(self.output.norm2(x))


class AbstractorLayer(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.crossattention = CrossAttention(*args)


class VisualAbstractor(nn.Module):
    def __init__(self, hidden, layers, heads, mlp, queries, out_hidden, grid):
        super().__init__()
        self.query_embeds = nn.Parameter(torch.zeros(1, queries, hidden))
        self.encoder = Layers([AbstractorLayer(hidden, heads, mlp, queries, grid) for _ in range(layers)])
        self.visual_fc = nn.Linear(hidden, out_hidden)
        self.vit_eos = nn.Parameter(torch.zeros(1, 1, out_hidden))

    def forward(self, image):
        x = self.query_embeds.expand(image.shape[0], -1, -1)
        for layer in self.encoder.layers:
            x = layer.crossattention(x, image)
        x = self.visual_fc(x)
        return torch.cat([x, self.vit_eos.expand(x.shape[0], -1, -1)], dim=1)


# --- LLaMA with the modality-adaptive module --------------------------------------------------

class RmsNorm(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Multiway(nn.Module):
    """Branch 0 for text tokens, branch 1 for the image's tokens at [start, end)."""

    def __init__(self, make):
        super().__init__()
        self.multiway = nn.ModuleList([make(), make()])

    def forward(self, x, start: int, end: int):
        text, image = self.multiway[0], self.multiway[1]
        return torch.cat([text(x[:, :start]), image(x[:, start:end]), text(x[:, end:])], dim=1)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = Multiway(lambda: nn.Linear(hidden, hidden, bias=False))
        self.v_proj = Multiway(lambda: nn.Linear(hidden, hidden, bias=False))
        self.o_proj = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x, span, cos, sin, mask):
        b, s, d = x.shape
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q = split(self.q_proj(x))
        k = split(self.k_proj(x, *span))
        v = split(self.v_proj(x, *span))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + mask
        attention = scores.float().softmax(dim=-1).to(q.dtype)
        return self.o_proj((attention @ v).transpose(1, 2).reshape(b, s, d))


class LlamaMlp(nn.Module):
    def __init__(self, hidden, mlp):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, mlp, bias=False)
        self.up_proj = nn.Linear(hidden, mlp, bias=False)
        self.down_proj = nn.Linear(mlp, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, hidden, heads, mlp, eps):
        super().__init__()
        self.input_layernorm = Multiway(lambda: RmsNorm(hidden, eps))
        self.self_attn = LlamaAttention(hidden, heads)
        self.post_attention_layernorm = Multiway(lambda: RmsNorm(hidden, eps))
        self.mlp = LlamaMlp(hidden, mlp)

    def forward(self, x, span, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x, *span), span, cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x, *span))


class Owl2Model(nn.Module):
    """`model.*` of the checkpoint: the language model and the two vision parts."""

    def __init__(self, shape):
        super().__init__()
        v, a, l = shape["vision"], shape["abstractor"], shape["llm"]
        self.vision_model = VisionModel(v["hidden"], v["layers"], v["heads"], v["mlp"], v["eps"])
        self.visual_abstractor = VisualAbstractor(a["hidden"], a["layers"], a["heads"], a["mlp"],
                                                  a["queries"], l["hidden"], IMAGE_SIZE // PATCH)
        self.embed_tokens = nn.Embedding(l["vocab"], l["hidden"])
        self.layers = nn.ModuleList([LlamaLayer(l["hidden"], l["heads"], l["mlp"], l["eps"])
                                     for _ in range(l["layers"])])
        self.norm = RmsNorm(l["hidden"], l["eps"])


class DeqaScore(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.model = Owl2Model(shape)
        self.lm_head = nn.Linear(shape["llm"]["hidden"], shape["llm"]["vocab"], bias=False)


class QualityPrior(nn.Module):
    """The traced module: image → (score, F_q) for the fixed prompt."""

    def __init__(self, deqa: DeqaScore):
        super().__init__()
        llm = deqa.shape["llm"]
        self.vision_model = deqa.model.vision_model
        self.visual_abstractor = deqa.model.visual_abstractor
        self.embed_tokens = deqa.model.embed_tokens
        self.layers = deqa.model.layers
        self.norm = deqa.model.norm
        self.register_buffer("before", torch.tensor(PROMPT_BEFORE))
        self.register_buffer("after", torch.tensor(PROMPT_AFTER))
        self.register_buffer("level_head", deqa.lm_head.weight[LEVEL_IDS].detach().clone())
        self.register_buffer("weights", torch.tensor(LEVEL_WEIGHTS))
        visual = deqa.model.visual_abstractor.query_embeds.shape[1] + 1
        self.start = len(PROMPT_BEFORE)
        self.end = self.start + visual
        length = self.end + len(PROMPT_AFTER)
        head_dim = llm["hidden"] // llm["heads"]
        inv_freq = 1.0 / (llm["rope_theta"] ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(length).float(), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos()[None, None])
        self.register_buffer("sin", angles.sin()[None, None])
        mask = torch.full((length, length), torch.finfo(torch.float32).min).triu(1)
        self.register_buffer("mask", mask[None, None])

    def forward(self, pixels):
        visual = self.visual_abstractor(self.vision_model(pixels))
        b = visual.shape[0]
        x = torch.cat([self.embed_tokens(self.before).expand(b, -1, -1), visual.to(self.cos.dtype),
                       self.embed_tokens(self.after).expand(b, -1, -1)], dim=1)
        span = (self.start, self.end)
        mask = self.mask.to(x.dtype)
        for layer in self.layers:
            x = layer(x, span, self.cos.to(x.dtype), self.sin.to(x.dtype), mask)
        features = self.norm(x)[:, -1]
        logits = features @ self.level_head.t()
        score = (logits.float().softmax(dim=-1) * self.weights).sum(dim=-1)
        return score, features


# --- export ---------------------------------------------------------------------------------

def load_checkpoint(model: DeqaScore, path: pathlib.Path) -> None:
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    if not files:
        sys.exit(f"{path}: no .safetensors files (the Hugging Face checkpoint folder)")
    from safetensors.torch import load_file
    state = {}
    for file in files:
        state.update(load_file(str(file)))
    missing, _ = model.load_state_dict(state, strict=False)
    needed = [k for k in missing if not k.endswith(("q_pos_embed", "k_pos_embed"))]
    if needed:
        sys.exit(f"{path} is not a DeQA-Score checkpoint: missing {needed[:5]} (and {max(0, len(needed) - 5)} more)")


def randomise(model: nn.Module, seed: int) -> None:
    """Seeded weights for every parameter: norms near one, the rest small, so each path of
    the graph (both multiway branches included) shows in a parity test."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            norm = isinstance(module, (nn.LayerNorm, RmsNorm))
            for name, parameter in module.named_parameters(recurse=False):
                scale = 0.1 if parameter.dim() == 1 else 0.02
                base = 1.0 if norm and name == "weight" else 0.0
                parameter.copy_(base + torch.randn(parameter.shape, generator=generator) * scale)


def preprocess(path: pathlib.Path) -> torch.Tensor:
    """mPLUG-Owl2's expand2square and CLIPImageProcessor (Pillow bicubic), as DeQA-Score runs."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = max(w, h)
    square = Image.new("RGB", (side, side), PAD_COLOUR)
    square.paste(image, ((side - w) // 2, (side - h) // 2))
    square = square.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(square, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return ((pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).unsqueeze(0)


def main() -> None:
    parser = common.export_parser(__doc__, "the DeQA-Score checkpoint folder",
                                  "small widths (tests)")
    args = common.parse_export_args(parser)

    common.seeded(args.seed)
    shape = TINY if args.tiny else FULL
    deqa = DeqaScore(shape)
    if args.checkpoint is not None:
        common.progress(f"loading {args.checkpoint}")
        load_checkpoint(deqa, args.checkpoint)
    else:
        randomise(deqa, args.seed)
    prior = QualityPrior(deqa).eval()
    common.progress("tracing")
    example = (torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(7)),)
    traced = common.trace(prior, example)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(args.out))
    manifest = common.write_manifest(args.out, {
        "prior": "quality",
        "architecture": "deqa-score-mplug-owl2" + ("-tiny" if args.tiny else ""),
        "backend_name": "deqa",
        "parameters": sum(p.numel() for p in prior.parameters()),
        "input": {"size": IMAGE_SIZE, "pad": "square-mean-colour", "pad_colour": list(PAD_COLOUR),
                  "resize": "shorter-side-bicubic-pil", "crop": "centre", "mean": MEAN, "std": STD},
        "outputs": {"features": shape["llm"]["hidden"], "score_range": [1.0, 5.0]},
        "level_words": LEVEL_WORDS,
        "source": common.source_record(args.checkpoint, None if args.checkpoint else args.seed),
    })
    common.progress(f"wrote {args.out} and {manifest}")
    if args.reference_images:
        out = args.reference_out
        out.mkdir(parents=True, exist_ok=True)
        index = []
        for number, path in enumerate(args.reference_images):
            pixels = preprocess(path)
            with torch.no_grad():
                score, features = prior(pixels)
            stem = f"{number:02d}"
            common.write_f32(out / f"{stem}-pixels.f32", pixels)
            common.write_f32(out / f"{stem}-score.f32", score)
            common.write_f32(out / f"{stem}-features.f32", features)
            index.append({"image": str(path), "stem": stem})
        (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
        common.progress(f"reference outputs for {len(index)} images in {out}")


if __name__ == "__main__":
    main()
