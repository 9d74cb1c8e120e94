"""PatchGAN discriminator with spectral normalization (Isola et al. 2017; Miyato et al. 2018).

It scores overlapping patches, so it judges local texture (brush strokes), not composition:
the Gram loss already matches the painting's global statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """RGB [0,1] [B,3,H,W] -> patch logits [B,1,h,w] (raw scores, no sigmoid).

    n_layers stride-2 convs; the receptive field of one logit is 70 px for n_layers=3
    and 142 px for n_layers=4.
    """

    def __init__(self, channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError("discriminator n_layers must be ≥ 1")
        self.config = {"channels": channels, "n_layers": n_layers}
        layers: list[nn.Module] = []
        c_in, c_out = 3, channels
        for _ in range(n_layers):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            c_in, c_out = c_out, min(c_out * 2, channels * 8)
        layers += [
            spectral_norm(nn.Conv2d(c_in, c_out, 4, 1, 1)),
            nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(c_out, 1, 4, 1, 1)),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2.0 - 1.0)
