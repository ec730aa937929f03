"""Small test models built from torch.nn blocks, reachable as entry points
(``tests.importers.pytorch.models:cnn``). Each factory seeds its own weights, so the same
entry point always gives the same module, and BatchNorm statistics are made non-trivial."""

from __future__ import annotations

import torch
from torch import nn


def _seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return module.eval()


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class CNN(nn.Module):
    """Conv/BatchNorm stem, two residual blocks, global pooling, classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.block1 = ResBlock(8)
        self.block2 = ResBlock(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Separable(nn.Module):
    """Depthwise and grouped convolutions (MobileNet / ResNeXt style)."""

    def __init__(self) -> None:
        super().__init__()
        self.pw = nn.Conv2d(3, 16, 1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.ReLU6()
        self.grouped = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=4)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        x = self.act(self.bn(self.dw(self.pw(x))))
        return self.head(torch.relu(self.grouped(x)))


class Recurrent(nn.Module):
    """A two-layer LSTM followed by a bidirectional GRU over (batch, time, features)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, num_layers=2, batch_first=True)
        self.gru = nn.GRU(12, 8, batch_first=True, bidirectional=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.out(y)


class Encoder(nn.Module):
    """nn.TransformerEncoder over token features, mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


class Attention(nn.Module):
    """nn.MultiheadAttention with separate query and key/value sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, q, kv):
        y, _ = self.attn(q, kv, kv, need_weights=False)
        return self.norm(q + y)


class Upsampler(nn.Module):
    """Nearest and bilinear upsampling with a skip connection (a decoder stage)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.fuse = nn.Conv2d(7, 4, 3, padding=1)

    def forward(self, x):
        y = self.up(torch.relu(self.conv(x)))
        y = self.fuse(torch.cat([y, x], dim=1))
        return self.up2(y)


class TwoInOut(nn.Module):
    """Two inputs (image, vector) and a tuple output (logits, embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.vec = nn.Linear(5, 6)
        self.cls = nn.Linear(6, 3)

    def forward(self, image, vector):
        feat = torch.relu(self.bn(self.conv(image))).mean(dim=(2, 3))
        emb = feat * torch.sigmoid(self.vec(vector))
        return self.cls(emb), emb


def cnn() -> nn.Module:
    return _seeded(CNN(), 1)


def separable() -> nn.Module:
    return _seeded(Separable(), 2)


def recurrent() -> nn.Module:
    return _seeded(Recurrent(), 3)


def encoder() -> nn.Module:
    return _seeded(Encoder(), 4)


def attention() -> nn.Module:
    return _seeded(Attention(), 5)


def upsampler() -> nn.Module:
    return _seeded(Upsampler(), 6)


def two_in_out() -> nn.Module:
    return _seeded(TwoInOut(), 7)


class Broken(nn.Module):
    """Uses an operator the ONNX exporter cannot translate (for error-message tests)."""

    def forward(self, x):
        return torch.linalg.eig(x)[0].real


# name -> (factory, {input name: shape}); the batch is dim 0 of every input.
MODELS = {
    "cnn": (cnn, {"x": [2, 3, 16, 16]}),
    "separable": (separable, {"x": [2, 3, 16, 16]}),
    "recurrent": (recurrent, {"x": [2, 5, 6]}),
    "encoder": (encoder, {"x": [2, 7, 8]}),
    "attention": (attention, {"q": [2, 4, 16], "kv": [2, 6, 16]}),
    "upsampler": (upsampler, {"x": [2, 3, 16, 16]}),
    "two_in_out": (two_in_out, {"image": [2, 3, 8, 8], "vector": [2, 5]}),
}


class DataDependent(nn.Module):
    """Python control flow on tensor values: torch.export cannot capture it."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


class Tagger(nn.Module):
    """Integer token ids in (embedding), per-token scores out."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc(torch.tanh(self.embed(ids)))


def tagger() -> nn.Module:
    return _seeded(Tagger(), 8)
