"""The seed's per-image optimization: it lowers the seed's loss, stops on its own, keeps colour."""

from __future__ import annotations

import pytest
import torch

from gan_stylizer.color import rgb_to_yiq
from gan_stylizer.models.vgg import VGG19Features
from gan_stylizer.optimize import optimize_image, stylize_by_optimization
from gan_stylizer.perceptual import PerceptualCriterion


@pytest.fixture(scope="module")
def criterion():
    vgg = VGG19Features(["relu1_1", "relu2_1", "relu3_1"], weights="none")
    return PerceptualCriterion(vgg, {"relu1_1": 0.5, "relu2_1": 0.5}, "relu3_1")


def images(seed=0):
    gen = torch.Generator().manual_seed(1000 + seed)  # not the optimizer's noise seed
    content = torch.rand(1, 3, 24, 32, generator=gen)
    style = torch.rand(1, 3, 40, 40, generator=gen) ** 3
    return content, style


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimization_lowers_the_loss(criterion, optimizer):
    content, style = images()
    criterion.set_style(style)
    result = optimize_image(
        content, criterion, alpha=1e4, beta=1.0, steps=15, optimizer=optimizer, progress=False
    )
    totals = [h["total"] for h in result.history]
    assert totals[-1] < 0.7 * totals[0]
    assert result.image.shape == content.shape
    assert 0 <= result.image.min().item() and result.image.max().item() <= 1
    assert result.steps == 15 and result.seconds > 0


def test_init_content_starts_at_zero_content_loss_and_noise_does_not(criterion):
    content, style = images()
    criterion.set_style(style)
    from_content = optimize_image(content, criterion, alpha=1.0, beta=1.0, steps=1, progress=False)
    from_noise = optimize_image(
        content, criterion, alpha=1.0, beta=1.0, steps=1, init="noise", progress=False
    )
    assert from_content.history[0]["content"] == 0.0
    assert from_noise.history[0]["content"] > 0.0


def test_tolerance_stops_early(criterion):
    content, style = images()
    criterion.set_style(style)
    result = optimize_image(
        content, criterion, alpha=0.0, beta=1.0, steps=50, tol=1.0, progress=False
    )
    assert result.steps < 50


def test_preserve_colors_keeps_the_content_chroma(criterion):
    content, style = images(1)
    content = 0.25 + 0.5 * content  # away from the clamp
    result = stylize_by_optimization(
        content,
        style,
        criterion,
        preserve_colors=True,
        alpha=10.0,
        beta=1.0,
        steps=5,
        progress=False,
    )
    chroma_out = rgb_to_yiq(result.image)[:, 1:]
    chroma_in = rgb_to_yiq(content)[:, 1:]
    assert (chroma_out - chroma_in).abs().mean().item() < 0.02


def test_bad_arguments_are_refused(criterion):
    content, style = images()
    criterion.set_style(style)
    with pytest.raises(ValueError, match="optimizer"):
        optimize_image(content, criterion, alpha=1, beta=1, optimizer="sgd")
    with pytest.raises(ValueError, match="init"):
        optimize_image(content, criterion, alpha=1, beta=1, init="zeros")


def test_an_overshooting_step_restarts_from_the_best_image(criterion, monkeypatch):
    # L-BFGS takes full steps without a line search; at 20 times the usual step size the
    # loss explodes. The guard goes back to the best image at half the step size each time.
    from gan_stylizer import optimize

    content, style = images()
    criterion.set_style(style)
    kwargs = dict(alpha=1e4, beta=1.0, steps=40, lr=20.0, clamp=True, progress=False)
    result = optimize_image(content, criterion, **kwargs)
    totals = [h["total"] for h in result.history]
    assert result.restarts >= 1
    assert max(totals) > optimize.BLOWUP * totals[0]  # it did overshoot
    assert result.final["total"] == min(totals) < totals[0]
    # The returned image is the one whose loss is reported (clamp=True: no final clamp).
    with torch.no_grad():
        l_style, l_content = criterion(result.image, criterion.content_features(content))
    assert (1e4 * l_style + l_content).item() == pytest.approx(result.final["total"], rel=1e-4)

    monkeypatch.setattr(optimize, "MAX_RESTARTS", 0)
    with pytest.raises(FloatingPointError, match="restarts"):
        optimize_image(content, criterion, **kwargs)
