"""Architectures the training command can build, all trained from scratch (no weights are
downloaded). `resnet_*` are compact residual nets sized for 2-core CPU inference; the
torchvision ones are reference points for the speed/accuracy table in the model card."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torchvision


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        # Zero-init the last BN so each block starts as identity: steadier from-scratch training.
        nn.init.zeros_(self.bn2.weight)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class CompactResNet(nn.Module):
    """Stem (two 3x3 convs, /4) then four stages of basic blocks, global pool, linear."""

    def __init__(self, widths, depths, num_classes: int, dropout: float = 0.2):
        super().__init__()
        stem = widths[0] // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers, cin = [], widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


ARCHITECTURES = {
    "resnet_s": lambda n: CompactResNet((32, 64, 128, 256), (1, 1, 2, 1), n),
    "resnet_m": lambda n: CompactResNet((48, 96, 192, 384), (1, 2, 2, 1), n),
    "resnet_l": lambda n: CompactResNet((64, 128, 256, 512), (2, 2, 2, 2), n),
    "mobilenet_v3_large": lambda n: torchvision.models.mobilenet_v3_large(num_classes=n),
    "efficientnet_b0": lambda n: torchvision.models.efficientnet_b0(num_classes=n),
    "resnet18": lambda n: torchvision.models.resnet18(num_classes=n),
}


def build(arch: str, num_classes: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture `{arch}`; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](num_classes)


def load_run(run: Path) -> tuple[nn.Module, dict]:
    """The EMA net a training run saved (`<run>/checkpoint.pt`), in eval mode, and its record."""
    path = Path(run) / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"`{path}` does not exist: expected a run folder written by autorma_models.train")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build(ck["arch"], len(ck["classes"]))
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


class Calibrated(nn.Module):
    """What ships: logits / temperature -> softmax, so the graph outputs probabilities."""

    def __init__(self, net: nn.Module, temperature: float):
        super().__init__()
        self.net = net
        self.register_buffer("inv_t", torch.tensor(1.0 / temperature))

    def forward(self, x):
        return torch.softmax(self.net(x) * self.inv_t, dim=1)
