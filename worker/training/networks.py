"""The networks regtrain trains. Parameter names are stable: they name the tensors in the artifact
and in the weight statistics (`hidden.0.linear.weight`, `output.bias`, ...), and `exclude` patterns
match against them."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from worker.training.config import ModelConfig
from worker.training.randomness import initialize

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class Dropout(nn.Module):
    """Inverted dropout: in training, each unit is kept with probability 1 - p and survivors are
    scaled by 1 / (1 - p); in eval mode it is the identity.

    On the CPU, torch's dropout draws its mask with bernoulli_, which is most of a small network's
    step time. Here the mask compares 32-bit uniform integers, two from each 64-bit draw of the same
    seeded generator, against a threshold: the same distribution (finer-grained than float32
    uniforms), about three times faster. On a GPU the mask compares float uniforms with 1 - p.

    The masks come from `generator` (the job's own, see worker/training/randomness.py); without one,
    from the process-wide RNG, which only code outside the engine should rely on."""

    def __init__(self, p: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.generator = generator
        # P(uniform int32 < threshold) = 1 - p, for int32 values uniform on [-2^31, 2^31).
        self.threshold = round((1 - p) * 2**32) - 2**31

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * torch.where(self.mask(x.shape, x.device), 1.0 / (1.0 - self.p), 0.0).to(x.dtype)

    def mask(self, shape: torch.Size | tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The kept units of one draw (True = kept), from the generator."""
        if device.type != "cpu":
            if self.generator is None:
                return torch.rand(shape, device=device) >= self.p
            return torch.rand(shape, device=device, generator=self.generator) >= self.p
        n = math.prod(shape)
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 1) // 2,), dtype=torch.int64, generator=self.generator)
        return (bits.view(torch.int32)[:n] < self.threshold).view(shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DenseBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.BatchNorm1d(out_features) if cfg.batch_norm else None
        self.activation = ACTIVATIONS[cfg.activation]()
        self.dropout = Dropout(cfg.dropout) if cfg.dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        x = self.activation(x)
        return self.dropout(x) if self.dropout is not None else x


class LinearNet(nn.Module):
    """Linear regression, logistic regression (one logit) or softmax regression."""

    def __init__(self, in_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLPNet(nn.Module):
    def __init__(self, in_features: int, n_outputs: int, cfg: ModelConfig) -> None:
        super().__init__()
        widths = [in_features, *cfg.hidden_layers]
        self.hidden = nn.ModuleList(DenseBlock(a, b, cfg) for a, b in itertools.pairwise(widths))
        self.output = nn.Linear(widths[-1], n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.output(x)


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, cfg: ModelConfig, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, cfg.kernel_size, padding="same")
        self.norm = nn.BatchNorm2d(out_channels) if cfg.batch_norm else None
        self.activation = ACTIVATIONS[cfg.activation]()
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        x = self.activation(x)
        return self.pool(x) if self.pool is not None else x


class ConvNet(nn.Module):
    """Convolution blocks (each halves the image while it is at least 2x2), then an MLP head."""

    def __init__(self, image_shape: tuple[int, int, int], n_outputs: int, cfg: ModelConfig) -> None:
        super().__init__()
        blocks, channels, height, width = [], image_shape[0], image_shape[1], image_shape[2]
        for out_channels in cfg.channels:
            pool = height >= 2 and width >= 2
            blocks.append(ConvBlock(channels, out_channels, cfg, pool))
            channels = out_channels
            if pool:
                height, width = height // 2, width // 2
        self.conv = nn.ModuleList(blocks)
        self.head = MLPNet(channels * height * width, n_outputs, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return self.head(x)


def build_network(
    cfg: ModelConfig,
    n_features: int,
    n_outputs: int,
    image_shape: tuple[int, int, int] | None,
    generator: torch.Generator | None = None,
    dropout_generator: torch.Generator | None = None,
) -> nn.Module:
    """The network of a job, on the CPU in float32. With `generator`, it is built without touching the
    process-wide RNG and initialized from `generator` (randomness.initialize: the same weights as
    torch's defaults after `torch.manual_seed`); its dropout layers draw from `dropout_generator`."""
    if generator is None:
        net = _build(cfg, n_features, n_outputs, image_shape)
    else:
        with torch.device("meta"):
            net = _build(cfg, n_features, n_outputs, image_shape)
        net = net.to_empty(device="cpu")
        initialize(net, generator)
    for module in net.modules():
        if isinstance(module, Dropout):
            module.generator = dropout_generator
    return net


def _build(cfg: ModelConfig, n_features: int, n_outputs: int, image_shape: tuple[int, int, int] | None) -> nn.Module:
    if cfg.type == "linear":
        return LinearNet(n_features, n_outputs)
    if cfg.type == "mlp":
        return MLPNet(n_features, n_outputs, cfg)
    if image_shape is None:
        raise ValueError("a cnn needs image-shaped data (N, C, H, W)")
    if math.prod(image_shape) != n_features:
        raise ValueError(f"image shape {image_shape} does not hold {n_features} features")
    return ConvNet(image_shape, n_outputs, cfg)
