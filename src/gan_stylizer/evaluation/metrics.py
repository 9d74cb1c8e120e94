"""Metrics that no method here optimizes: the sliced Wasserstein distance between VGG feature
clouds (texture) and between CIELab pixel clouds (palette), SSIM of luminance and edge agreement
(content kept, without VGG), and seconds and peak memory of a block.
"""

from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_stylizer.color import luminance, rgb_to_lab

SWD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


SWD_PROJECTIONS = 128


SWD_SEED = 0


# Feature vectors per layer that enter the SWD (quantiles, evenly spaced): enough to resolve the
# distributions, small enough that relu1_1 of a 512-px image sorts in milliseconds.
SWD_POINTS = 16384


def random_directions(channels: int, projections: int, seed: int) -> torch.Tensor:
    """[channels, projections] unit vectors, the same for the same (channels, projections, seed)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    dirs = torch.randn(channels, projections, generator=gen, dtype=torch.float64)
    return (dirs / dirs.norm(dim=0, keepdim=True)).float()


def _quantiles(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """`count` evenly spaced quantiles ((i + ½)/count) of each column of a sorted [N, P] tensor."""
    n = sorted_values.shape[0]
    if count == n:
        return sorted_values
    index = ((torch.arange(count, dtype=torch.float64) + 0.5) * n / count).long().clamp_(0, n - 1)
    return sorted_values[index.to(sorted_values.device)]


def sorted_projections(points: torch.Tensor, projections: int, seed: int) -> torch.Tensor:
    """[N, C] points projected on the fixed random unit directions, each projection sorted:
    [projections, N] (sorted along the contiguous last dimension, about twice as fast on a CPU
    as sorting the columns of [N, projections])."""
    dirs = random_directions(points.shape[1], projections, seed).to(points.device)
    return torch.sort((points.float() @ dirs).t().contiguous(), dim=1).values


def _sw_sorted(sorted_a: torch.Tensor, sorted_b: torch.Tensor, max_points: int) -> float:
    """SW₂ from two clouds' sorted projections [P, N] and [P, M] (same directions)."""
    count = min(sorted_a.shape[1], sorted_b.shape[1], max_points)
    qa = _quantiles(sorted_a.t(), count)
    qb = _quantiles(sorted_b.t(), count).to(qa.device)
    return math.sqrt((qa - qb).double().pow(2).mean().item())


def sliced_wasserstein(
    points_a: torch.Tensor,
    points_b: torch.Tensor,
    projections: int = SWD_PROJECTIONS,
    seed: int = SWD_SEED,
    max_points: int = SWD_POINTS,
) -> float:
    """SW₂ between two point clouds [N, C] and [M, C]: √(mean over random unit directions u of
    W₂²(u·a, u·b)), each 1-D W₂ taken between sorted projections (their quantiles when N ≠ M
    or the clouds are larger than max_points). Zero for identical clouds, invariant to the order
    of the points, and for b = a + v it is √(mean_u (u·v)²) exactly."""
    if points_a.dim() != 2 or points_b.dim() != 2 or points_a.shape[1] != points_b.shape[1]:
        raise ValueError(
            f"point clouds must be [N, C] and [M, C], got {tuple(points_a.shape)} "
            f"and {tuple(points_b.shape)}"
        )
    return _sw_sorted(
        sorted_projections(points_a, projections, seed),
        sorted_projections(points_b, projections, seed),
        max_points,
    )


def feature_points(features: torch.Tensor) -> torch.Tensor:
    """[1, C, H, W] feature map -> [H·W, C] cloud of feature vectors."""
    return features[0].float().flatten(1).t()


def colour_points(image: torch.Tensor) -> torch.Tensor:
    """[1, 3, H, W] RGB in [0, 1] -> [H·W, 3] cloud of its pixels' CIELab colours."""
    return rgb_to_lab(image.float().cpu())[0].flatten(1).t()


def _gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


def _blur(image: torch.Tensor, sigma: float, radius: int, padding: str) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W]; padding 'valid' (no pad) or 'reflect'."""
    k = _gaussian_kernel(sigma, radius).to(image.device)
    if padding == "reflect":
        image = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    image = F.conv2d(image, k.view(1, 1, 1, -1))
    return F.conv2d(image, k.view(1, 1, -1, 1))


def ssim(image_a: torch.Tensor, image_b: torch.Tensor) -> float:
    """Mean SSIM of the luminance of two RGB [0, 1] images [1, 3, H, W] (Wang et al. 2004:
    Gaussian window σ = 1.5 over 11 px, K1 = 0.01, K2 = 0.03, data range 1; the mean is taken
    over the positions where the window fits, as scikit-image does). 1 for identical images."""
    if image_a.shape != image_b.shape:
        raise ValueError(f"ssim needs equal shapes, got {image_a.shape} and {image_b.shape}")
    if min(image_a.shape[-2:]) < 11:
        raise ValueError("ssim needs images of at least 11×11 px")
    ya, yb = luminance(image_a.float()).double(), luminance(image_b.float()).double()
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return _blur(x.float(), 1.5, 5, "valid").double()

    mu_a, mu_b = blur(ya), blur(yb)
    var_a = blur(ya * ya) - mu_a**2
    var_b = blur(yb * yb) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.mean().item()


def edge_map(image: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Sobel gradient magnitude of the Gaussian-blurred luminance: [1, 1, H, W]. The blur keeps
    the scene's outlines and drops the brush-stroke texture a stylizer is meant to add."""
    y = _blur(luminance(image.float()), sigma, max(1, round(3 * sigma)), "reflect")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=y.device)
    y = F.pad(y, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(y, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(y, sobel.t().contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx * gx + gy * gy)


def edge_agreement(stylized: torch.Tensor, content: torch.Tensor) -> float:
    """Pearson correlation of the edge maps of output and content, in [-1, 1]: 1 when every
    outline of the photo is still there with the same relative strength."""
    if stylized.shape[-2:] != content.shape[-2:]:
        raise ValueError(
            f"edge_agreement needs equal sizes, got {tuple(stylized.shape[-2:])} "
            f"and {tuple(content.shape[-2:])}"
        )
    a = edge_map(stylized).double().flatten()
    b = edge_map(content).double().flatten()
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return (a @ b / denom).item() if denom > 0 else 0.0


def _rss_peak_mb() -> float | None:
    """This process's peak resident set size since the last reset (Linux), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_mem_mb: float | None = None  # CUDA: peak allocated; CPU: peak RSS of the process
    peak_mem_kind: str = ""


@contextlib.contextmanager
def measure(device: torch.device) -> Iterator[Measurement]:
    """Wall time and peak memory of the enclosed block (CUDA synchronized at both ends)."""
    m = Measurement()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        m.peak_mem_kind = "cuda_max_allocated"
    else:
        m.peak_mem_kind = "process_peak_rss" if _reset_rss_peak() else "process_peak_rss_lifetime"
    start = time.perf_counter()
    try:
        yield m
    finally:
        if cuda:
            torch.cuda.synchronize(device)
            m.peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            m.peak_mem_mb = _rss_peak_mb()
        m.seconds = time.perf_counter() - start
