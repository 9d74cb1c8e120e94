"""The evaluation metrics on inputs with known answers, and a tiny end-to-end evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_stylizer.evaluation.metrics import (
    edge_agreement,
    measure,
    random_directions,
    sliced_wasserstein,
    ssim,
)
from gan_stylizer.evaluation.report import format_table
from gan_stylizer.evaluation.ruler import Evaluator, mean_metrics
from gan_stylizer.evaluation.runners import steps_to_reach
from gan_stylizer.losses import gram
from gan_stylizer.models.generator import Generator
from gan_stylizer.optimize import optimize_image

REPO = Path(__file__).resolve().parents[1]


def smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=gen)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear").clamp(0, 1)


# ---- sliced Wasserstein ------------------------------------------------------------------------


def test_swd_is_zero_for_identical_and_for_reordered_clouds():
    gen = torch.Generator().manual_seed(0)
    cloud = torch.randn(500, 16, generator=gen)
    assert sliced_wasserstein(cloud, cloud) == 0.0
    shuffled = cloud[torch.randperm(500, generator=gen)]
    assert sliced_wasserstein(cloud, shuffled) == pytest.approx(0.0, abs=1e-6)


def test_swd_of_a_shifted_cloud_is_the_rms_projected_shift():
    gen = torch.Generator().manual_seed(1)
    cloud = torch.randn(300, 8, generator=gen)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0, 0.0, -1.0])
    dirs = random_directions(8, 64, seed=5)
    expected = (shift @ dirs).pow(2).mean().sqrt().item()
    got = sliced_wasserstein(cloud, cloud + shift, projections=64, seed=5)
    assert got == pytest.approx(expected, rel=1e-4)
    # Random unit directions in 8-D: E[(u·v)²] = |v|²/8.
    assert got == pytest.approx((shift.norm() / 8**0.5).item(), rel=0.25)


def test_swd_is_repeatable_and_compares_clouds_of_different_sizes():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(4000, 4, generator=gen), torch.randn(1000, 4, generator=gen)
    assert sliced_wasserstein(a, b, seed=3) == sliced_wasserstein(a, b, seed=3)
    same_law = sliced_wasserstein(a, b)
    other_law = sliced_wasserstein(a, b * 3 + 1)
    assert same_law < 0.15 < 1.0 < other_law
    with pytest.raises(ValueError, match="point clouds"):
        sliced_wasserstein(a, torch.randn(10, 5))


def test_a_shuffled_texture_keeps_its_gram_and_its_feature_distribution():
    gen = torch.Generator().manual_seed(4)
    features = torch.rand(1, 8, 12, 10, generator=gen)
    perm = torch.randperm(120, generator=gen)
    shuffled = features.flatten(2)[..., perm].reshape(features.shape)
    assert not torch.equal(features, shuffled)
    torch.testing.assert_close(gram(features), gram(shuffled))
    points = features[0].flatten(1).t()
    assert sliced_wasserstein(points, shuffled[0].flatten(1).t()) == pytest.approx(0, abs=1e-6)


# ---- content preservation ----------------------------------------------------------------------


def test_ssim_is_one_for_identical_images_and_matches_scikit_image():
    from skimage.metrics import structural_similarity

    from gan_stylizer.color import luminance

    a = smooth_image(40, 56, seed=0)
    b = (a + 0.1 * torch.rand(a.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    ya, yb = (luminance(x)[0, 0].double().numpy() for x in (a, b))
    expected = structural_similarity(
        ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert ssim(a, b) == pytest.approx(expected, abs=2e-3)
    assert ssim(a, b) < 1.0
    with pytest.raises(ValueError, match="equal shapes"):
        ssim(a, b[..., :-1])


def test_edge_agreement_is_one_for_identical_and_low_for_unrelated_images():
    a = smooth_image(48, 48, seed=0)
    assert edge_agreement(a, a) == pytest.approx(1.0, abs=1e-9)
    # Stylization keeps outlines: a colour shift and fine noise keep the agreement high.
    noisy = (a * 0.7 + 0.2 + 0.02 * torch.randn(a.shape, generator=torch.Generator())).clamp(0, 1)
    assert edge_agreement(noisy, a) > 0.8
    assert abs(edge_agreement(smooth_image(48, 48, seed=9), a)) < 0.5
    assert edge_agreement(torch.full_like(a, 0.5), a) == 0.0


def test_lab_matches_the_published_values_of_the_srgb_primaries():
    from gan_stylizer.color import rgb_to_lab

    rgb = torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    lab = rgb_to_lab(rgb.t().reshape(1, 3, 5, 1))[0, :, :, 0].t()
    expected = torch.tensor(
        [[100, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86]]
        + [[0, 0, 0]]
    )
    assert torch.allclose(lab, expected, atol=0.02)


# ---- the reference evaluator -------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(smooth_image(64, 64, seed=11), alpha=50.0, beta=1.0)


def test_the_style_image_itself_scores_zero_style_loss_and_swd(evaluator):
    style = smooth_image(64, 64, seed=11)
    m = evaluator.evaluate("style", style, style)
    assert m.style == pytest.approx(0.0, abs=1e-3)
    assert m.content == 0.0 and m.swd == pytest.approx(0.0, abs=1e-3)
    assert m.ssim == pytest.approx(1.0) and m.edges == pytest.approx(1.0)
    assert set(m.swd_layers) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1"}
    assert m.palette == pytest.approx(0.0, abs=1e-3)


def test_the_palette_ignores_the_layout_and_sees_a_grey_copy(evaluator):
    style = smooth_image(64, 64, seed=11)
    shuffled = style.flatten(2)[..., torch.randperm(64 * 64)].view_as(style)
    grey = style.mean(dim=1, keepdim=True).expand_as(style)
    assert evaluator.palette(shuffled) == pytest.approx(0.0, abs=1e-3)
    assert evaluator.palette(grey) > 5.0  # ΔE: the colours are gone, the lightness kept
    assert evaluator.palette(smooth_image(64, 64, seed=3)) > 1.0


def test_a_photo_scores_worse_than_the_style_on_style_and_better_on_content(evaluator):
    photo = smooth_image(64, 64, seed=3)
    style = smooth_image(64, 64, seed=11)
    as_is = evaluator.evaluate("photo", photo, photo)
    styled = evaluator.evaluate("style", style, photo)
    assert as_is.style > styled.style and as_is.swd > styled.swd
    assert as_is.content < styled.content and as_is.ssim > styled.ssim
    assert as_is.total == pytest.approx(50.0 * as_is.style + as_is.content, rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        evaluator.evaluate("bad", style[..., :32], photo)


def test_optimization_stops_at_a_target_and_reports_when_it_got_there(evaluator):
    photo = smooth_image(48, 48, seed=5)
    full = optimize_image(
        photo, evaluator.criterion, alpha=50, beta=1, steps=6, tol=0, progress=False, clamp=True
    )
    totals = [h["total"] for h in full.history]
    target = totals[3]
    reached = steps_to_reach(full.history, target)
    assert reached is not None and reached[0] <= 3 and reached[1] > 0
    assert steps_to_reach(full.history, min(totals) / 10) is None

    seen = []
    stopped = optimize_image(
        photo,
        evaluator.criterion,
        alpha=50,
        beta=1,
        steps=6,
        tol=0,
        progress=False,
        stop_below=target,
        clamp=True,
        on_step=lambda step, image: seen.append((step, tuple(image.shape))),
    )
    assert stopped.steps == reached[0] < 6
    assert seen == [(s, (1, 3, 48, 48)) for s in range(1, stopped.steps + 1)]
    s, c, total = evaluator.losses(stopped.image, photo)
    assert total <= target * (1 + 1e-3)


def test_measure_reports_time_and_memory_and_tables_render():
    with measure(torch.device("cpu")) as m:
        x = torch.ones(1000, 1000)
        del x
    assert m.seconds > 0 and m.peak_mem_mb is not None and m.peak_mem_mb > 0
    rows = [
        {"name": "a", "style": 1.0, "eq_steps": None},
        {"name": "b", "style": 3.0, "eq_steps": 4},
    ]
    mean = mean_metrics(rows)
    assert mean == {"style": 2.0, "eq_steps": 4.0}
    table = format_table([("a", rows[0]), ("mean", mean)], [("style", "L"), ("eq_steps", "n")])
    assert "| a | 1.000 | – |" in table and "| mean | 2.000 | 4.000 |" in table


# ---- end to end --------------------------------------------------------------------------------


def tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    g_cfg = {"channels": 8, "n_residual": 1, "norm": "instance"}
    generator = Generator(**g_cfg)
    torch.save(
        {
            "hyper_parameters": {"config": {"name": "tiny", "model": {"generator": g_cfg}}},
            "state_dict": {f"g_ema.{k}": v for k, v in generator.state_dict().items()},
        },
        path,
    )
    return path


def run_evaluate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "evaluate.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_evaluate_cli_writes_metrics_table_and_sheet(tmp_path, photo_dir, painting):
    ckpt = tiny_checkpoint(tmp_path / "tiny.ckpt")
    (photo_dir / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "eval"
    common = [f"input={photo_dir}", f"style.path={painting}", "style.size=48", "size=48"]
    proc = run_evaluate(
        f"ckpt={ckpt}", *common, f"output={out}", "equal_quality_steps=3", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "broken.jpg" in proc.stderr  # skipped with one line, the rest evaluated
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["per_image"]) == 4
    row = report["per_image"][0]
    for key in ("style", "content", "total", "swd", "ssim", "edges", "seconds", "peak_mem_mb"):
        assert isinstance(row[key], float) and np.isfinite(row[key]), key
    assert {"eq_steps", "eq_seconds", "eq_ratio"} <= set(row)
    assert report["mean"]["style"] == pytest.approx(
        sum(r["style"] for r in report["per_image"]) / 4
    )
    assert "| **mean** |" in (out / "metrics.md").read_text()
    assert (out / "sheet.png").is_file()
    assert len(list((out / "images").rglob("*.png"))) == 4

    # An existing report is not overwritten; the optimization method reports its snapshots.
    again = run_evaluate(f"ckpt={ckpt}", *common, f"output={out}", cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr
    opt_out = tmp_path / "opt"
    proc = run_evaluate(
        "method=optimize",
        *common,
        f"output={opt_out}",
        "steps=3",
        "snapshots=[1]",
        "limit=2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((opt_out / "metrics.json").read_text())
    early = json.loads((opt_out / "optimize_1" / "metrics.json").read_text())
    assert len(final["per_image"]) == len(early["per_image"]) == 2
    assert final["per_image"][0]["steps"] == 3 and early["per_image"][0]["steps"] == 1
    assert final["mean"]["total"] < early["mean"]["total"]


def test_evaluate_cli_rejects_bad_settings_in_one_line(tmp_path, photo_dir):
    proc = run_evaluate(f"input={photo_dir}", "method=gan", cwd=tmp_path)
    assert proc.returncode == 2 and "needs ckpt=" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_evaluate(
        f"input={photo_dir}", "method=optimize", "steps=3", "snapshots=[5]", cwd=tmp_path
    )
    assert proc.returncode == 2 and "snapshots" in proc.stderr


def test_one_vgg_pass_and_the_cached_painting_give_the_plain_numbers():
    """evaluate() shares one VGG pass of the output between the losses and the SWD and keeps
    the painting's sorted projections: the numbers must be those of the plain computation."""
    from gan_stylizer.evaluation.metrics import SWD_LAYERS, feature_points

    torch.manual_seed(0)
    painting, content = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 32, 48)
    output = (content * 0.5 + torch.rand_like(content) * 0.5).clamp(0, 1)
    evaluator = Evaluator(painting, alpha=7.0, beta=2.0, weights="none")
    m = evaluator.evaluate("x", output, content)
    criterion = evaluator.criterion
    with torch.no_grad():
        l_style, l_content = criterion(output, criterion.content_features(content))
        feats, style_feats = criterion.vgg(output), criterion.vgg(painting)
    swd = {
        name: sliced_wasserstein(feature_points(feats[name]), feature_points(style_feats[name]))
        for name in SWD_LAYERS
    }
    assert m.style == l_style.item() and m.content == l_content.item()
    assert m.total == pytest.approx(7.0 * l_style.item() + 2.0 * l_content.item())
    assert m.swd_layers == pytest.approx(swd, rel=1e-9)
