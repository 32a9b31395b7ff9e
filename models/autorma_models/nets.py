"""Architectures the training command can build, all trained from scratch (no weights are
downloaded). `resnet_*` are compact residual nets sized for 2-core CPU inference; the
torchvision ones are reference points for the speed/accuracy table in the model card."""
from __future__ import annotations

import json
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


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each conv with the BatchNorm after it, in the order the forward pass (and so the ONNX
    graph) meets them: modules are registered in the order `forward` calls them."""
    pairs, conv = [], None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            conv = m
        elif isinstance(m, nn.BatchNorm2d):
            pairs.append((conv, m))
    return pairs


@torch.no_grad()
def from_package(pkg: Path, calib: torch.Tensor) -> tuple[nn.Module, dict]:
    """A shipped package's network as a trainable module, for `train --init` when the run that
    made it is gone. Export folded each BatchNorm into the conv before it; the BN layers are
    unfolded again from `calib` (normalised photos, NCHW): each gets the per-channel mean and
    spread of its conv's output on them, so the module computes the package's logits exactly in
    eval mode and nearly so in train mode, where BN normalises by the batch."""
    import onnx
    from onnx import numpy_helper

    pkg = Path(pkg)
    meta = json.loads((pkg / "model.json").read_text())
    graph = onnx.load(str(pkg / meta["onnx"]["file"])).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    # The exporter stores equal tensors once and names the copies through Identity nodes.
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    model = build(meta["architecture"], len(meta["classes"])).eval()
    pairs = _conv_bn_pairs(model)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    if not isinstance(model, CompactResNet) or len(convs) != len(pairs) or len(gemms) != 1 or len(linear) != 1:
        raise ValueError(f"{pkg}: only resnet_* packages can start a run ({meta['architecture']}: "
                         f"{len(convs)} convs in the graph for {len(pairs)} conv+BN pairs)")
    for node, (conv, bn) in zip(convs, pairs):
        w, b = (weights[name] for name in node.input[1:3])
        if w.shape != conv.weight.shape:
            raise ValueError(f"{pkg}: conv weight {tuple(w.shape)} where {meta['architecture']} has "
                             f"{tuple(conv.weight.shape)}")
        conv.weight.copy_(w)
        bn.weight.fill_(1.0)
        bn.bias.copy_(b)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    linear[0].weight.copy_(weights[gemms[0].input[1]])
    linear[0].bias.copy_(weights[gemms[0].input[2]])
    # Now each BN only adds the folded bias; measure what the conv before it outputs.
    stats = {}
    hooks = [conv.register_forward_hook(
        lambda mod, _, out, key=i: stats.__setitem__(key, (out.mean((0, 2, 3)), out.var((0, 2, 3)))))
        for i, (conv, _) in enumerate(pairs)]
    model(calib)
    for h in hooks:
        h.remove()
    for i, (_, bn) in enumerate(pairs):
        mean, var = stats[i]
        # gamma * (z - mean) / sqrt(var + eps) + beta == z + folded bias, for any z.
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.add_(mean)
    return model, {"arch": meta["architecture"], "classes": meta["classes"], "size": meta["input_size"],
                   "temperature": meta["temperature"]}


class Calibrated(nn.Module):
    """What ships: logits / temperature -> softmax, so the graph outputs probabilities."""

    def __init__(self, net: nn.Module, temperature: float):
        super().__init__()
        self.net = net
        self.register_buffer("inv_t", torch.tensor(1.0 / temperature))

    def forward(self, x):
        return torch.softmax(self.net(x) * self.inv_t, dim=1)
