"""The style weight calibrated from the painting (training/calibration.py): a painting that
pulls less than Starry Night gets a larger factor on its style term, bounded; the second stage
corrects it so that the optimum leaves Starry Night's share of the style loss; it applies only
under the reference's network and layers; the system multiplies the style term by it."""

from __future__ import annotations

import pytest
import torch
from conftest import load_research, write_painting

from gan_stylizer.config.schema import TrainConfig, VGGConfig
from gan_stylizer.io.images import load_image
from gan_stylizer.perceptual import build_criterion
from gan_stylizer.training import calibration
from gan_stylizer.training.calibration import (
    LIMITS,
    REFERENCE_SHARE,
    correction_for,
    not_applicable,
    pull,
    share_correction,
    style_scale,
)


def test_it_applies_only_under_the_reference_criterion():
    cfg = TrainConfig()
    assert not_applicable(cfg) is None
    cfg.loss.calibrate = False
    assert not_applicable(cfg) == "loss.calibrate=false"
    cfg = TrainConfig()
    cfg.loss.vgg = VGGConfig(weights="none")
    assert "network" in not_applicable(cfg)
    cfg = TrainConfig()
    cfg.loss.style_layers = {"relu1_1": 1.0}
    assert "layers" in not_applicable(cfg)
    scale, line = style_scale(cfg, None, torch.zeros(1, 3, 8, 8))
    assert scale == 1.0 and "as given" in line


@pytest.mark.slow
def test_a_painting_that_pulls_less_gets_more_style_within_bounds(tmp_path, monkeypatch):
    cfg = TrainConfig()
    criterion = build_criterion(cfg.loss)  # the real caffe VGG19
    smooth = load_image(write_painting(tmp_path / "smooth.png", (192, 128)), size=256)
    noise = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    pulls = {"smooth": pull(criterion, smooth), "noise": pull(criterion, noise)}
    assert 0 < pulls["smooth"] and 0 < pulls["noise"]
    # the pull alone here; the second stage has its own tests below
    monkeypatch.setattr(calibration, "share_correction", lambda *_: (1.0, REFERENCE_SHARE))
    monkeypatch.setattr(calibration, "REFERENCE_PULL", pulls["noise"])
    assert style_scale(cfg, criterion, noise)[0] == pytest.approx(1.0)
    scale, line = style_scale(cfg, criterion, smooth)
    expected = min(max(pulls["noise"] / pulls["smooth"], LIMITS[0]), LIMITS[1])
    assert scale == pytest.approx(expected) and "calibrated" in line
    monkeypatch.setattr(calibration, "REFERENCE_PULL", pulls["smooth"] * 1e6)
    assert style_scale(cfg, criterion, smooth)[0] == LIMITS[1]  # bounded


def test_the_system_scales_the_style_term(tmp_path):
    from test_training import tiny_config

    from gan_stylizer.perceptual import build_criterion as build
    from gan_stylizer.system import StylizerSystem

    painting = load_image(write_painting(tmp_path / "p.png"), size=64)
    photo_dir = tmp_path / "photos"
    cfg = tiny_config(photo_dir, tmp_path / "p.png")
    content = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    losses = []
    for scale in (1.0, 3.0):
        system = StylizerSystem(cfg, build(cfg.loss), painting, None, scale)
        total, logs = system._perceptual_loss(content, content, False, None)
        losses.append((total.item(), logs["train/g_style"].item(), logs["train/g_content"].item()))
    (t1, s1, c1), (t3, s3, c3) = losses
    assert s1 == pytest.approx(s3) and c1 == pytest.approx(c3)
    assert t3 - t1 == pytest.approx(2 * cfg.loss.alpha * s1, rel=1e-4)


def test_the_texture_pull_photos_take_the_paintings_colour_mean_and_covariance():
    gen = torch.Generator().manual_seed(0)
    photo = 0.4 + 0.2 * torch.rand(1, 3, 32, 48, generator=gen)  # far from the clamp
    mix = torch.tensor([[0.15, 0.05, 0.0], [0.05, 0.1, 0.02], [0.0, 0.02, 0.08]])
    painting = torch.tensor([0.5, 0.45, 0.4]).view(3, 1) + mix @ torch.randn(
        3, 40 * 40, generator=gen
    )
    painting = painting.clamp(0, 1).reshape(1, 3, 40, 40)
    matched = load_research("calibration").match_colours(photo, painting)

    def stats(image):
        pixels = image.flatten(2)[0]
        centred = pixels - pixels.mean(1, keepdim=True)
        return pixels.mean(1), centred @ centred.T / centred.shape[1]

    assert matched.shape == photo.shape and 0 <= matched.min() and matched.max() <= 1
    (mean_m, cov_m), (mean_s, cov_s) = stats(matched), stats(painting)
    assert torch.allclose(mean_m, mean_s, atol=2e-3) and torch.allclose(cov_m, cov_s, atol=2e-3)


def test_the_research_script_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    main = load_research("calibration").main
    assert main([f"data_dir={tmp_path}", "optimum=yes"]) == 2
    assert main([f"data_dir={tmp_path}", f"out={tmp_path}/sheet.png"]) == 2
    assert main([f"data_dir={tmp_path}", "optimum=true", f"out={tmp_path}/no/sheet.png"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)


def test_the_strength_paying_a_content_loss_is_log_linear_and_extends_beyond_the_ends():
    import math

    strength_paying = load_research("calibration").strength_paying
    contents = [1.0, math.e, math.e**2]  # at s = 0, 0.5, 1
    for target, expected in [
        (math.e, 0.5),
        (math.e**1.5, 0.75),
        (math.e**3, 1.5),
        (1 / math.e, -0.5),
    ]:
        assert strength_paying(target, contents) == pytest.approx(expected)


def test_the_second_stage_is_log_linear_in_alpha_and_extends_beyond_its_two_points():
    import math

    # the share falls by e at each step of e in alpha: slope -1 in log-log
    for share, expected in [(REFERENCE_SHARE * math.e, math.e), (REFERENCE_SHARE / 2, 0.5)]:
        step = math.e if share > REFERENCE_SHARE else 1 / math.e
        other = share / step
        assert correction_for(share, other, step) == pytest.approx(expected)
    # beyond the two points: the share at 4x the reference, e^2 less at e^2 the weight
    share = 4 * REFERENCE_SHARE
    assert correction_for(share, share / math.e**2, math.e**2) == pytest.approx(4.0)
    # a share that does not fall as alpha rises (or is not positive) changes nothing
    assert correction_for(0.12, 0.12, 5.0) == 1.0
    assert correction_for(0.12, 0.2, 5.0) == 1.0
    assert correction_for(0.03, 0.02, 1 / 5.0) == 1.0
    assert correction_for(0.0, 0.01, 1 / 5.0) == 1.0
    # a share that barely falls asks for no more than the span of LIMITS (no overflow)
    span = LIMITS[1] / LIMITS[0]
    assert correction_for(0.2, 0.1999, 5.0) == pytest.approx(span)
    assert correction_for(REFERENCE_SHARE / 2, REFERENCE_SHARE / 1.9999, 0.2) == pytest.approx(
        1 / span
    )


def test_the_factor_is_the_pulls_times_the_correction_within_bounds(monkeypatch):
    cfg = TrainConfig()
    painting = torch.zeros(1, 3, 8, 8)
    monkeypatch.setattr(calibration, "pull", lambda *_: calibration.REFERENCE_PULL / 2)
    monkeypatch.setattr(calibration, "share_correction", lambda *_: (1.5, 0.09))
    scale, line = style_scale(cfg, None, painting)
    assert scale == pytest.approx(3.0)
    assert "2 x 1.5 = 3" in line and "0.0900" in line and "bounded" not in line
    monkeypatch.setattr(calibration, "share_correction", lambda *_: (8.0, 0.3))
    scale, line = style_scale(cfg, None, painting)
    assert scale == LIMITS[1] and "bounded to 0.1-10" in line


@pytest.mark.slow
def test_the_second_stage_asks_more_style_of_a_painting_whose_optimum_keeps_more(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(calibration, "SHARE_STEPS", 4)  # the direction, not the optimum
    monkeypatch.setattr(calibration, "SHARE_PHOTOS", 1)
    criterion = build_criterion(TrainConfig().loss)  # the real caffe VGG19
    criterion.set_style(load_image(write_painting(tmp_path / "p.png", (192, 128)), size=256))
    correction, share = share_correction(criterion, 1.0)
    assert 0 < share < 1
    monkeypatch.setattr(calibration, "REFERENCE_SHARE", share / 2)  # the reference keeps less
    assert share_correction(criterion, 1.0)[0] > 1.0
    monkeypatch.setattr(calibration, "REFERENCE_SHARE", share * 2)
    assert share_correction(criterion, 1.0)[0] < 1.0
