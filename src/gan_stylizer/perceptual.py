"""The perceptual criterion: VGG19 features of a style image and a content image, turned into
the seed's style and content losses for any number of generated images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from gan_stylizer.losses import content_loss, gram, style_loss
from gan_stylizer.models.vgg import VGG19Features, build_vgg

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYER = "relu4_2"


class PerceptualCriterion(nn.Module):
    """Style and content losses under a frozen VGG19.

    The style image's Gram matrices are computed once (set_style) and kept as non-persistent
    buffers: they follow the module across devices but never enter a checkpoint.
    """

    def __init__(
        self,
        vgg: VGG19Features,
        style_layers: Mapping[str, float] | Sequence[str] = DEFAULT_STYLE_LAYERS,
        content_layer: str = DEFAULT_CONTENT_LAYER,
    ) -> None:
        super().__init__()
        if not isinstance(style_layers, Mapping):
            style_layers = {name: 1.0 / len(style_layers) for name in style_layers}
        self.layer_weights = dict(style_layers)
        self.content_layer = content_layer
        missing = [n for n in (*self.layer_weights, content_layer) if n not in vgg.layers]
        if missing:
            raise ValueError(f"the VGG was not built with the layer(s) {missing}")
        self.vgg = vgg
        self._target_m: dict[str, int] = {}

    @torch.no_grad()
    def set_style(self, style_image: torch.Tensor) -> None:
        """Compute target Grams from one style image, RGB [0,1] [1,3,H,W]."""
        feats = self.vgg(style_image)
        for name in self.layer_weights:
            f = feats[name]
            self.register_buffer(f"_gram_{name}", gram(f)[0], persistent=False)
            self._target_m[name] = f.shape[-2] * f.shape[-1]

    def target_grams(self) -> dict[str, tuple[torch.Tensor, int]]:
        if not self._target_m:
            raise RuntimeError("PerceptualCriterion.set_style() must be called first")
        return {n: (getattr(self, f"_gram_{n}"), self._target_m[n]) for n in self.layer_weights}

    @torch.no_grad()
    def content_features(self, content: torch.Tensor) -> torch.Tensor:
        """Content-layer features of RGB [0,1] content images [B,3,H,W] (no gradient), from a
        pass that stops at the content layer."""
        return self.vgg(content, until=self.content_layer)[self.content_layer]

    def forward(
        self, stylized: torch.Tensor, content_target: torch.Tensor | None, reduce: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_style, L_content) for RGB [0,1] images [B,3,H,W], means over the batch (reduce=
        False: per image, [B] each); L_content is 0 without target."""
        feats = self.vgg(stylized)
        l_style = style_loss(self.target_grams(), feats, self.layer_weights, reduce)
        if content_target is None:
            l_content = torch.zeros_like(l_style)
        else:
            l_content = content_loss(content_target, feats[self.content_layer], reduce)
        return l_style, l_content

    @property
    def layers(self) -> tuple[str, ...]:
        return (*self.layer_weights, self.content_layer)


def build_criterion(loss_cfg) -> PerceptualCriterion:
    layers = [*loss_cfg.style_layers, loss_cfg.content_layer]
    vgg = build_vgg(layers, weights=loss_cfg.vgg.weights, pooling=loss_cfg.vgg.pooling)
    return PerceptualCriterion(vgg, dict(loss_cfg.style_layers), loss_cfg.content_layer)
