#!/usr/bin/env python3
"""Times a training step of a plain PyTorch model of the compact restorer's backbone.

The compact config's Restormer backbone alone (blocks [1,1,2,2], channels [16,32,48,64],
heads [1,2,4,8], GDFN expansion 2.66; no prior modules, no refinement block), forward +
backward of an L1 loss on a batch of crops, in fp32 and under bfloat16 autocast, NCHW and
channels-last. Two questions it answers on a CPU: does mixed precision speed up training
here, and how far is `clearair train benchmark`'s full step from a plain backbone's.

Usage: .venv/bin/python deploy/scripts/backbone_step_probe.py [--threads 2] [--batch 4]
       [--crop 128] [--runs 6]
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelAttention(nn.Module):  # MDTA
    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=False)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, 1)
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attention = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(-1)
        return self.project_out((attention @ v).reshape(b, c, h, w))


class GatedFeedForward(nn.Module):  # GDFN
    def __init__(self, channels, expansion=2.66):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x):
        gate, value = self.dw(self.project_in(x)).chunk(2, 1)
        return self.project_out(F.gelu(gate) * value)


class ChannelNorm(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.norm1, self.attention = ChannelNorm(channels), ChannelAttention(channels, heads)
        self.norm2, self.feed_forward = ChannelNorm(channels), GatedFeedForward(channels)

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.feed_forward(self.norm2(x))


class Backbone(nn.Module):
    def __init__(self, channels=(16, 32, 48, 64), heads=(1, 2, 4, 8), blocks=(1, 1, 2, 2)):
        super().__init__()
        self.embed = nn.Conv2d(3, channels[0], 3, padding=1, bias=False)
        self.encoders = nn.ModuleList(
            nn.Sequential(*[Block(channels[i], heads[i]) for _ in range(blocks[i])]) for i in range(4))
        self.downs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, stride=2, padding=1, bias=False) for i in range(3))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2, bias=False) for i in range(3))
        self.decoders = nn.ModuleList(
            nn.Sequential(*[Block(channels[i], heads[i]) for _ in range(blocks[i])]) for i in range(3))
        self.output = nn.Conv2d(channels[0], 3, 3, padding=1, bias=False)

    def forward(self, x):
        features, skips = self.embed(x), []
        for level in range(3):
            features = self.encoders[level](features)
            skips.append(features)
            features = self.downs[level](features)
        features = self.encoders[3](features)
        for level in reversed(range(3)):
            features = self.decoders[level](self.ups[level](features) + skips[level])
        return x + self.output(features)


def time_steps(layout, dtype, args):
    torch.manual_seed(0)
    net = Backbone().to(memory_format=layout)
    inputs = torch.rand(args.batch, 3, args.crop, args.crop).to(memory_format=layout)
    target = torch.rand(args.batch, 3, args.crop, args.crop)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            output = net(inputs)
        loss = (output.float() - target).abs().mean()
        net.zero_grad()
        loss.backward()
        times.append(time.perf_counter() - start)
    warm = sorted(times[2:]) or times
    return 1000 * warm[len(warm) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"plain backbone, {args.batch} x {args.crop}^2, {args.threads} threads, "
          f"median of the last {max(args.runs - 2, 1)} steps")
    results = {}
    for layout_name, layout in [("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)]:
        for dtype_name, dtype in [("fp32", torch.float32), ("bf16 autocast", torch.bfloat16)]:
            ms = time_steps(layout, dtype, args)
            results[(layout_name, dtype_name)] = ms
            pixels = args.batch * args.crop * args.crop
            print(f"  {layout_name:13s} {dtype_name:13s} {ms:8.1f} ms/step {pixels / ms * 1000:9.0f} px/s")
    for layout_name in ["NCHW", "channels-last"]:
        ratio = results[(layout_name, "bf16 autocast")] / results[(layout_name, "fp32")]
        print(f"  {layout_name}: bf16 autocast takes {ratio:.2f}x the fp32 step")


if __name__ == "__main__":
    main()
