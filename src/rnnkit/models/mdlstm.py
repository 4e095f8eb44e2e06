r"""An image classifier and a per-pixel segmenter on a multi-dimensional LSTM (Graves et al. 2007; Graves &
Schmidhuber 2009).

    classifier: images (B, H, W) ──cut into p x p patches──> (B, H/p, W/p, p*p) ──MDLSTM layer(s), 4 directions
      (rnnkit.layers.mdlstm)──> (B, H/p, W/p, D*Hd) ──mean over the positions──> (B, D*Hd)
      ──dropout, dense──> logits (B, C) ──softmax cross-entropy

    segmenter: images (B, Ci, H, W) ──p x p patches──> (B, H/p, W/p, Ci*p*p) ──MDLSTM layer(s)──> (B, H/p, W/p, D*Hd)
      ──dropout, dense at every position──> (B, H/p, W/p, C*p*p) ──back onto the pixels──> logits (B, C, H, W)
      ──per-pixel softmax cross-entropy

Graves & Schmidhuber (NIPS 2009) feed MDLSTMs with small blocks of pixels rather than single pixels ("input
blocks"); ``patch`` is that block size (1: one pixel per position). With four directions every position's
output has seen the whole image, so a mean over the positions is a summary of the image seen from every
position (the 2009 network sums its top layer's outputs over the positions in the same way).

The segmenter labels every pixel from its position's output, the concatenated states of the four scans there
(as Graves et al. 2007 segment their Air Freight images, one label per pixel): the four directions together give
each pixel context from the whole image, which a pixel's own colour lacks (a red pixel may belong to a circle or a
square). With ``patch`` p > 1 one position reads a p x p block, and the dense layer gives each of its p*p pixels
its own C logits (Graves & Schmidhuber's input blocks, run backwards for the output).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from ..layers.mdlstm import MDLSTM, MDLSTMConfig


def check_grid_config(config, positive: tuple[str, ...]) -> None:
    """The checks both configs share: positive sizes, >= 2 classes, image sides divisible by the patch, a dropout
    probability, valid directions. Makes image_size a tuple (JSON gives a list)."""
    name = type(config).__name__
    config.image_size = tuple(config.image_size)
    for field in positive:
        check_positive_int(name, field, getattr(config, field))
    if config.num_classes < 2:
        raise ValueError(f"{name}: expected num_classes >= 2, got {config.num_classes}")
    H, W = config.image_size
    if H % config.patch or W % config.patch:
        raise ValueError(f"{name}: expected image sides divisible by patch {config.patch}, got {H} x {W}")
    check_probability(name, "dropout", config.dropout)
    MDLSTMConfig(1, config.hidden, directions=config.directions)  # checks directions


@dataclass
class MDLSTMClassifierConfig:
    num_classes: int = 10
    image_size: tuple[int, int] = (28, 28)  # H, W of the input images
    patch: int = 2  # p: positions are p x p blocks of pixels (H and W must be multiples of p)
    hidden: int = 32  # units per direction
    layers: int = 1
    directions: int = 4
    dropout: float = 0.0  # between MDLSTM layers and before the dense layer

    def __post_init__(self):
        check_grid_config(self, ("num_classes", "patch", "hidden", "layers"))


class MDLSTMClassifier(nn.Module):
    """``logits, () = model(images, state=None, lengths=None)``; images (B, H, W) floats -> logits (B, C).
    The state and lengths arguments keep the Trainer's model contract; images have none."""

    def __init__(self, config: MDLSTMClassifierConfig):
        super().__init__()
        self.config = c = config
        size = c.patch * c.patch
        self.layers = nn.ModuleList()
        for _ in range(c.layers):
            layer = MDLSTM(MDLSTMConfig(size, c.hidden, directions=c.directions, merge="concat"))
            self.layers.append(layer)
            size = layer.output_size
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(size, c.num_classes)

    def patches(self, images: Tensor) -> Tensor:
        """(B, H, W) -> (B, H/p, W/p, p*p): each position holds its block's pixels row by row."""
        c = self.config
        if not torch.is_tensor(images) or images.dim() != 3 or tuple(images.shape[1:]) != c.image_size \
                or not images.is_floating_point():
            got = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"MDLSTMClassifier: expected images (B, {c.image_size[0]}, {c.image_size[1]}) floats, "
                             f"got {got}")
        B, H, W = images.shape
        p = c.patch
        x = images.reshape(B, H // p, p, W // p, p).permute(0, 1, 3, 2, 4)  # b h p w q -> b h w p q
        return x.reshape(B, H // p, W // p, p * p)

    def forward(self, images: Tensor, state=None, lengths=None):
        if lengths is not None:
            raise ValueError("MDLSTMClassifier: images have no lengths; expected lengths=None")
        x = self.patches(images)
        for k, layer in enumerate(self.layers):
            x, _ = layer(x if k == 0 else self.drop(x))  # (B, h, w, D*Hd)
        pooled = x.mean(dim=(1, 2))  # (B, D*Hd)
        return self.head(self.drop(pooled)), ()


@dataclass
class MDLSTMSegmenterConfig:
    num_classes: int = 4  # background, circle, square, triangle (rnnkit.data.scenes.SEGMENT_CLASSES)
    image_size: tuple[int, int] = (32, 32)  # H, W of the input images
    channels: int = 3  # Ci: colour channels of the input images
    patch: int = 2  # p: positions are p x p blocks of pixels (H and W must be multiples of p)
    hidden: int = 32  # units per direction
    layers: int = 1
    directions: int = 4
    dropout: float = 0.0  # between MDLSTM layers and before the dense layer

    def __post_init__(self):
        check_grid_config(self, ("num_classes", "channels", "patch", "hidden", "layers"))


class MDLSTMSegmenter(nn.Module):
    """``logits, () = model(images, state=None, lengths=None)``: images (B, Ci, H, W), uint8 pixels or floats in
    [0, 1] -> per-pixel logits (B, C, H, W) (the layout ``F.cross_entropy`` takes with targets (B, H, W)).

    Example::

        >>> model = MDLSTMSegmenter(MDLSTMSegmenterConfig(image_size=(16, 16), patch=2, hidden=8))
        >>> model(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))[0].shape
        torch.Size([2, 4, 16, 16])
    """

    def __init__(self, config: MDLSTMSegmenterConfig):
        super().__init__()
        self.config = c = config
        size = c.channels * c.patch * c.patch
        self.layers = nn.ModuleList()
        for _ in range(c.layers):
            layer = MDLSTM(MDLSTMConfig(size, c.hidden, directions=c.directions, merge="concat"))
            self.layers.append(layer)
            size = layer.output_size
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(size, c.num_classes * c.patch * c.patch)  # C logits for each pixel of a block

    def patches(self, images: Tensor) -> Tensor:
        """(B, Ci, H, W) -> (B, H/p, W/p, Ci*p*p) floats scaled to [-1, 1]: each position holds its block's
        pixels, channel by channel, each channel's p x p pixels row by row."""
        c = self.config
        shape = (c.channels, *c.image_size)
        if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != shape \
                or not (images.dtype == torch.uint8 or images.is_floating_point()):
            got = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"MDLSTMSegmenter: expected images (B, {', '.join(map(str, shape))}) as uint8 pixels or "
                             f"floats in [0, 1], got {got}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        x = (x - 0.5) * 2.0
        B, C, H, W = x.shape
        p = c.patch
        x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)  # b c h p w q -> b h w c p q
        return x.reshape(B, H // p, W // p, C * p * p)

    def forward(self, images: Tensor, state=None, lengths=None):
        if lengths is not None:
            raise ValueError("MDLSTMSegmenter: images have no lengths; expected lengths=None")
        c = self.config
        x = self.patches(images)
        for k, layer in enumerate(self.layers):
            x, _ = layer(x if k == 0 else self.drop(x))  # (B, h, w, D*Hd)
        B, h, w, _ = x.shape
        p = c.patch
        logits = self.head(self.drop(x)).reshape(B, h, w, c.num_classes, p, p)  # (B, h, w, C, p, q)
        logits = logits.permute(0, 3, 1, 4, 2, 5)  # b h w C p q -> b C h p w q
        return logits.reshape(B, c.num_classes, h * p, w * p), ()
