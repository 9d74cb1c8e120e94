"""The fixed ruler that ranks stylizers: the seed's losses under caffe VGG19 (max pooling,
relu1_1..relu5_1 at 1/5 each, content relu4_2), the SWD to the painting's VGG features and the
palette distance to its colours, whatever a model was trained with. Runs compare only under one
ruler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from gan_stylizer.evaluation.metrics import (
    SWD_LAYERS,
    SWD_POINTS,
    SWD_PROJECTIONS,
    SWD_SEED,
    _sw_sorted,
    colour_points,
    edge_agreement,
    feature_points,
    sorted_projections,
    ssim,
)
from gan_stylizer.losses import content_loss, style_loss, total_loss
from gan_stylizer.models.vgg import build_vgg
from gan_stylizer.perceptual import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, PerceptualCriterion

# Directions of the palette's SW₂: Lab has 3 dimensions, so 32 cover them densely.
PALETTE_PROJECTIONS = 32


@dataclass
class ImageMetrics:
    name: str
    width: int
    height: int
    style: float
    content: float
    total: float
    swd: float
    swd_layers: dict[str, float] = field(default_factory=dict)
    ssim: float = 0.0
    edges: float = 0.0
    palette: float = 0.0
    seconds: float | None = None
    peak_mem_mb: float | None = None
    extra: dict[str, float | int | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        return d | self.extra


METRIC_KEYS = (
    "style", "content", "total", "swd", "palette", "ssim", "edges", "seconds", "peak_mem_mb",
)  # fmt: skip


def mean_metrics(rows: Sequence[dict]) -> dict[str, float | None]:
    """Mean of every numeric key over the rows where it is a number (a None, e.g. a target
    never reached, is left out of that key's mean)."""
    keys: dict[str, None] = {}  # ordered union of the numeric keys
    for row in rows:
        for k, v in row.items():
            if (
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and k not in ("width", "height")
            ):
                keys[k] = None
    out: dict[str, float | None] = {}
    for key in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        out[key] = sum(values) / len(values) if values else None
    return out


class Evaluator:
    """The fixed ruler: holds the reference VGG19 and the style image's statistics.

    alpha, beta: the weights of the total L = α·L_style + β·L_content that ranks outputs.
    weights: 'caffe' for every number we report; 'none' only for tests of the plumbing.
    """

    def __init__(
        self,
        style_image: torch.Tensor,
        *,
        alpha: float,
        beta: float,
        device: torch.device | str = "cpu",
        weights: str = "caffe",
        projections: int = SWD_PROJECTIONS,
        seed: int = SWD_SEED,
    ) -> None:
        self.alpha, self.beta = float(alpha), float(beta)
        self.device = torch.device(device)
        self.projections, self.seed = projections, seed
        layers = sorted({*DEFAULT_STYLE_LAYERS, DEFAULT_CONTENT_LAYER, *SWD_LAYERS})
        vgg = build_vgg(layers, weights=weights, pooling="max")
        weights_per_layer = {name: 1.0 / len(DEFAULT_STYLE_LAYERS) for name in DEFAULT_STYLE_LAYERS}
        self.criterion = PerceptualCriterion(vgg, weights_per_layer, DEFAULT_CONTENT_LAYER)
        self.criterion.to(self.device)
        style_image = style_image.to(self.device)
        self.criterion.set_style(style_image)
        with torch.no_grad():
            feats = self.criterion.vgg(style_image)
        # The painting's side of every SWD, projected and sorted once for all outputs.
        self._style_sorted = {
            name: sorted_projections(feature_points(feats[name]), projections, seed)
            for name in SWD_LAYERS
        }
        self._palette_sorted = sorted_projections(
            colour_points(style_image), PALETTE_PROJECTIONS, seed
        )

    @torch.no_grad()
    def features(self, stylized: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference VGG's features of an output: one pass serves every metric."""
        return self.criterion.vgg(stylized.to(self.device).float())

    @torch.no_grad()
    def losses(
        self,
        stylized: torch.Tensor,
        content: torch.Tensor,
        features: dict[str, torch.Tensor] | None = None,
    ) -> tuple[float, float, float]:
        """(L_style, L_content, α·L_style + β·L_content) under the reference network
        (features: the output's, from self.features, if already computed)."""
        features = self.features(stylized) if features is None else features
        target = self.criterion.content_features(content.to(self.device).float())
        criterion = self.criterion
        l_style = style_loss(criterion.target_grams(), features, criterion.layer_weights)
        l_content = content_loss(target, features[criterion.content_layer])
        total = total_loss(l_style, l_content, self.alpha, self.beta)
        return l_style.item(), l_content.item(), total.item()

    @torch.no_grad()
    def swd(
        self, stylized: torch.Tensor, features: dict[str, torch.Tensor] | None = None
    ) -> dict[str, float]:
        """SWD per layer between the output's and the style image's feature vectors."""
        features = self.features(stylized) if features is None else features
        return {
            name: _sw_sorted(
                sorted_projections(feature_points(features[name]), self.projections, self.seed),
                self._style_sorted[name],
                SWD_POINTS,
            )
            for name in SWD_LAYERS
        }

    def palette(self, stylized: torch.Tensor) -> float:
        """SW₂ in CIELab (ΔE units) between the output's pixel colours and the painting's: 0 when
        the output uses the painting's colours in the painting's proportions, whatever the
        layout; a grey or photo-coloured copy scores far from a colourful painting."""
        return _sw_sorted(
            sorted_projections(colour_points(stylized), PALETTE_PROJECTIONS, self.seed),
            self._palette_sorted,
            SWD_POINTS,
        )

    def evaluate(
        self,
        name: str,
        stylized: torch.Tensor,
        content: torch.Tensor,
        seconds: float | None = None,
        peak_mem_mb: float | None = None,
    ) -> ImageMetrics:
        """Every metric of one output against its content photo (same size, [1, 3, H, W])."""
        if stylized.shape != content.shape:
            raise ValueError(
                f"{name}: output {tuple(stylized.shape)} and content {tuple(content.shape)} differ"
            )
        features = self.features(stylized)
        l_style, l_content, total = self.losses(stylized, content, features)
        layers = self.swd(stylized, features)
        del features
        stylized, content = stylized.float().cpu(), content.float().cpu()
        return ImageMetrics(
            name=name,
            width=int(content.shape[-1]),
            height=int(content.shape[-2]),
            style=l_style,
            content=l_content,
            total=total,
            swd=sum(layers.values()) / len(layers),
            swd_layers=layers,
            palette=self.palette(stylized),
            ssim=ssim(stylized, content),
            edges=edge_agreement(stylized, content),
            seconds=seconds,
            peak_mem_mb=peak_mem_mb,
        )


def reference_description() -> dict:
    return {
        "network": "caffe VGG19, max pooling",
        "style_layers": list(DEFAULT_STYLE_LAYERS),
        "content_layer": DEFAULT_CONTENT_LAYER,
        "swd_layers": list(SWD_LAYERS),
        "swd_projections": SWD_PROJECTIONS,
        "swd_seed": SWD_SEED,
        "swd_points": SWD_POINTS,
        "palette": f"SW2 of CIELab (D65) pixel colours, {PALETTE_PROJECTIONS} projections",
        "ssim": "luminance, Gaussian 11 px σ=1.5",
        "edges": "Pearson r of Sobel magnitude of luminance blurred σ=2",
    }
