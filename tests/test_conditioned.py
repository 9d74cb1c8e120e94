"""A strength dial (model=conditioned): one generator whose norms are modulated by a style
strength s in [0, 1]. It starts as the plain generator, every inference path (whole, tiled,
ONNX, pt2) takes s, stylize.py writes one output per strength or a strip, bad strengths are
refused, and a tiny trained model's style loss falls as s rises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_checkpoint, write_painting, write_photo
from PIL import Image

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.commands.stylize import run as stylize
from gan_stylizer.config.schema import StylizeConfig
from gan_stylizer.dial import strength_to_alpha
from gan_stylizer.errors import ConfigError
from gan_stylizer.inference.onepass import OnePass
from gan_stylizer.models.generator import DEFAULT_STRENGTH, Generator

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(
        tmp_path_factory.mktemp("cond") / "last.ckpt", channels=4, conditioned=True
    )


@pytest.fixture(scope="module")
def generator(ckpt) -> Generator:
    return load_generator(ckpt)[0]


def test_a_fresh_conditioned_generator_is_the_plain_one_at_every_strength():
    torch.manual_seed(0)
    conditioned = Generator(channels=4, n_residual=1, conditioned=True).eval()
    plain = Generator(channels=4, n_residual=1).eval()
    shared = {k: v for k, v in conditioned.state_dict().items() if k in plain.state_dict()}
    plain.load_state_dict(shared, strict=True)
    content = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        for s in (0.0, 0.5, 1.0):
            assert torch.equal(conditioned(content, s), plain(content))


def test_strength_changes_the_output_per_image_and_is_validated(generator):
    content = torch.rand(1, 3, 33, 41).expand(2, -1, -1, -1)
    with torch.no_grad():
        low, high = generator(content, 0.0), generator(content, 1.0)
        mixed = generator(content, torch.tensor([0.0, 1.0]))
        default = generator(content)
    assert (low - high).abs().mean() > 1e-3
    assert torch.allclose(mixed[0], low[0], atol=1e-6) and torch.allclose(
        mixed[1], high[1], atol=1e-6
    )
    assert torch.equal(default, generator(content, DEFAULT_STRENGTH))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            generator(content, bad)
    with pytest.raises(ValueError, match="no strength input"):
        Generator(channels=4, n_residual=1)(content, 0.5)


def test_strength_maps_to_alpha_on_a_log_scale():
    assert strength_to_alpha(0.0, 1.0, 25.0) == pytest.approx(1.0)
    assert strength_to_alpha(0.5, 1.0, 25.0) == pytest.approx(5.0)
    assert strength_to_alpha(1.0, 1.0, 25.0) == pytest.approx(25.0)


@pytest.mark.parametrize("strength", [0.0, 0.3, 1.0])
def test_the_fast_and_tiled_paths_take_the_strength(generator, strength):
    content = torch.rand(1, 3, 150, 230)
    with torch.no_grad():
        expected = generator(content, strength)
    whole = OnePass(generator, tile="off")(content, strength)
    tiled = OnePass(generator, tile=64)(content, strength)
    assert (whole - expected).abs().max().item() < 1e-5
    assert (tiled - expected).abs().mean().item() * 255 < 0.01
    with pytest.raises(ValueError, match="no strength input"):
        OnePass(Generator(channels=4, n_residual=1))(content, 0.5)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_exported_models_take_the_strength_at_odd_sizes(tmp_path, generator, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from gan_stylizer.inference.export import export_generator
    from gan_stylizer.inference.exported import load_exported

    path, info = export_generator(generator, fmt, tmp_path / f"m.{fmt}", "tiny")
    assert '"strength"' in info.read_text()
    apply, _ = load_exported(path, torch.device("cpu"))
    assert apply.conditioned
    for size in [(257, 391), (64, 1000)]:
        content = torch.rand(1, 3, *size)
        with torch.no_grad():
            for s in (0.0, 0.7):
                assert (apply(content, s) - generator(content, s)).abs().max().item() <= 1e-3
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        apply(content, 2.0)


def test_stylize_writes_one_output_per_strength_or_a_strip(tmp_path, ckpt, capsys):
    photo = write_photo(tmp_path / "in" / "photo.png", (40, 30), seed=0)
    out = tmp_path / "out"
    assert (
        stylize(
            StylizeConfig(
                input=str(photo.parent), ckpt=str(ckpt), output=str(out), strength="0,0.25,1"
            )
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "photo_s0.25.png",
        "photo_s0.png",
        "photo_s1.png",
    ]
    images = {p.name: np.asarray(Image.open(p), dtype=np.float32) for p in out.iterdir()}
    assert np.abs(images["photo_s0.png"] - images["photo_s1.png"]).mean() > 0.5
    strip = tmp_path / "strip.png"
    assert (
        stylize(
            StylizeConfig(
                input=str(photo),
                ckpt=str(ckpt),
                output=str(strip),
                strength=[0, 0.25, 1],
                grid=True,
            )
        )
        == 0
    )
    assert Image.open(strip).size == (3 * 40 + 2 * 4, 30)
    with Image.open(strip) as img, Image.open(out / "photo_s0.25.png") as middle:
        assert np.array_equal(np.asarray(img.crop((44, 0, 84, 30))), np.asarray(middle))


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"strength": 1.5}, "outside"),
        ({"strength": "0,x"}, "not a number"),
        ({"strength": True}, "not a number"),
        ({"strength": "0.5,0.5"}, "listed twice"),
        ({"strength": [0.5], "grid": True}, "several strengths"),
        ({"strength": 0.5, "ckpt": None}, "needs ckpt"),
    ],
)
def test_bad_strengths_are_refused_before_any_work(tmp_path, ckpt, settings, message):
    photo = write_photo(tmp_path / "photo.png", (20, 20), seed=0)
    cfg = StylizeConfig(input=str(photo), ckpt=str(ckpt), output=str(tmp_path / "o.png"))
    for key, value in settings.items():
        setattr(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        stylize(cfg)
    assert not (tmp_path / "o.png").exists()


def test_a_plain_checkpoint_refuses_a_strength(tmp_path):
    plain = write_checkpoint(tmp_path / "plain.ckpt", channels=4)
    photo = write_photo(tmp_path / "photo.png", (20, 20), seed=0)
    with pytest.raises(ConfigError, match="no strength input"):
        stylize(StylizeConfig(input=str(photo), ckpt=str(plain), strength=0.5))


def test_the_command_line_takes_a_comma_separated_list_of_strengths(tmp_path, ckpt):
    photo = write_photo(tmp_path / "photo.png", (24, 16), seed=0)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "stylize.py"),
            f"ckpt={ckpt}",
            f"input={photo}",
            "strength=0,0.5,1",
            "grid=true",
            f"output={tmp_path / 'strip.png'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Image.open(tmp_path / "strip.png").size == (3 * 24 + 2 * 4, 16)


@pytest.mark.slow
def test_a_tiny_trained_conditioned_model_loses_style_loss_as_strength_rises(tmp_path):
    from test_training import tiny_config

    from gan_stylizer.io.images import load_image
    from gan_stylizer.perceptual import build_criterion
    from gan_stylizer.training.run import run

    photos = tmp_path / "photos"
    for i, size in enumerate([(80, 60), (64, 96), (100, 70), (72, 72)]):
        write_photo(photos / f"p{i}.png", size, seed=i)
    painting = write_painting(tmp_path / "painting.png")
    # With random VGG weights L_content ≈ 3e3 and L_style ≈ 1.5 on these crops: α from 300 to
    # 3e5 spans "content dominates" to "style dominates", so the dial has something to move.
    cfg = tiny_config(
        photos,
        painting,
        **{
            "model.generator.conditioned": True,
            "model.generator.channels": 8,
            "loss.alpha_min": 300.0,
            "loss.alpha_max": 300000.0,
            "loss.adv": 0.0,
            "data.batch_size": 4,
            "trainer.steps": 100,
            "trainer.lr_g": 3e-3,
            "trainer.ckpt_every": 1000,
            "trainer.image_every": 1000,
        },
    )
    generator, _ = load_generator(run(cfg, tmp_path / "run"))
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "conditioned on the style strength (each image's pull balanced by" in card
    criterion = build_criterion(cfg.loss)
    criterion.set_style(load_image(painting, size=64))
    crops = torch.cat([load_image(photos / f"p{i}.png", size=48)[..., :32, :32] for i in (0, 2)])
    with torch.no_grad():
        target = criterion.content_features(crops)
        curve = [criterion(generator(crops, s), target) for s in (0.0, 0.5, 1.0)]
    style = [float(ls) for ls, _ in curve]
    content = [float(lc) for _, lc in curve]
    assert style[0] > style[1] > style[2], style
    assert content[0] < content[2], content


def test_evaluate_takes_the_strength_of_a_conditioned_model(tmp_path, ckpt, photo_dir, painting):
    from gan_stylizer.commands.evaluate import run as evaluate
    from gan_stylizer.config.schema import EvaluateConfig, StyleConfig

    def report(strength, out):
        cfg = EvaluateConfig(
            input=str(photo_dir),
            ckpt=str(ckpt),
            strength=strength,
            size=48,
            limit=2,
            output=str(tmp_path / out),
            style=StyleConfig(name="test", path=str(painting), size=48),
        )
        return json.loads((evaluate(cfg) / "metrics.json").read_text())["mean"]

    low, high = report(0.0, "low"), report(1.0, "high")
    assert low["style"] != high["style"]
    plain = write_checkpoint(tmp_path / "plain.ckpt", channels=4)
    with pytest.raises(ConfigError, match="no strength input"):
        evaluate(EvaluateConfig(input=str(photo_dir), ckpt=str(plain), strength=0.5, size=48))
    with pytest.raises(ConfigError, match="one strength"):
        evaluate(EvaluateConfig(input=str(photo_dir), ckpt=str(ckpt), strength=[0, 1], size=48))


@pytest.mark.parametrize("conditioned, cells", [(True, 4), (False, 2)])
def test_the_sample_grid_shows_the_dial(tmp_path, conditioned, cells):
    from types import SimpleNamespace

    from gan_stylizer.io.images import load_image
    from gan_stylizer.training.callbacks import SampleGrid

    torch.manual_seed(0)
    g = Generator(channels=4, n_residual=1, conditioned=conditioned).eval()
    photo = torch.rand(1, 3, 32, 48)
    module = SimpleNamespace(val_images=[photo, photo], g_ema=g, device="cpu", g_step=7)
    SampleGrid(tmp_path, every=1).write(SimpleNamespace(is_global_zero=True, logger=None), module)
    grid = load_image(tmp_path / "step_000007.png")
    # photo | s=0 | s=0.5 | s=1 (labelled) for a conditioned generator, photo | output otherwise
    assert tuple(grid.shape[-2:]) == (2 * 32 + 4, cells * 48 + (cells - 1) * 4)


def conditioned_system(photos: Path, tmp_path: Path, **overrides):
    """(a StylizerSystem with a conditioned generator on tiny settings, its config)."""
    from test_training import tiny_config

    from gan_stylizer.io.images import load_image
    from gan_stylizer.perceptual import build_criterion
    from gan_stylizer.system import StylizerSystem

    painting = write_painting(tmp_path / "painting.png")
    cfg = tiny_config(photos, painting, **{"model.generator.conditioned": True, **overrides})
    return StylizerSystem(cfg, build_criterion(cfg.loss), load_image(painting, size=64)), cfg


def output_gradient_probe(tmp_path: Path, **overrides):
    """A conditioned system whose α spans 1…1000, style term alone (each image's perceptual
    gradient scales with its α), and `step(content, stylized, strength, adversarial)` that runs
    one generator step and returns the gradient it would push through G at the output pixels
    (nothing is updated)."""
    photos = tmp_path / "photos"
    for i in range(2):
        write_photo(photos / f"p{i}.png", (64, 48), seed=i)
    settings = {
        "loss.tv": 0.0,
        "loss.beta": 0.0,
        "loss.alpha_min": 1.0,
        "loss.alpha_max": 1000.0,
        **overrides,
    }
    system, cfg = conditioned_system(photos, tmp_path, **settings)
    captured = []
    system._finite = lambda loss, what: True
    system._clip_and_check = lambda opt, module, what: False  # no step: nothing changes
    system.manual_backward = lambda output, grad: captured.append(grad)
    opt = torch.optim.SGD(system.generator.parameters(), lr=0.0)

    def step(content, stylized, strength, adversarial: bool) -> torch.Tensor:
        system._generator_step(opt, content, stylized, adversarial, False, strength)
        return captured.pop()

    return system, step


def test_the_adversarial_share_is_taken_per_image_for_the_dial(tmp_path):
    """A conditioned batch takes λ per image: every image's adversarial gradient is `adv` times
    its own perceptual gradient at the output (with one λ per batch, measured in
    docs/results.md, an α=1 image was pushed far harder than 0.1)."""
    system, step = output_gradient_probe(tmp_path, **{"loss.adv": 0.1})
    torch.manual_seed(0)
    content = torch.rand(2, 3, 32, 32)
    strength = torch.tensor([0.0, 1.0])  # α = 1 and α = 1000 in one batch
    stylized = system.generator(content, strength)
    perceptual, total = (step(content, stylized, strength, adv) for adv in (False, True))
    share = (total - perceptual).flatten(1).norm(dim=1) / perceptual.flatten(1).norm(dim=1)
    assert share.tolist() == pytest.approx([0.1, 0.1], rel=1e-3)


def test_one_adversarial_share_per_batch_for_a_plain_generator():
    from gan_stylizer.dial import adversarial_weights

    grad = torch.tensor([[[[3.0, 4.0]]], [[[0.0, 0.0]]]])  # norms 5 and 0: batch norm 5
    grad_adv = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])  # norms 1 and 1: batch √2
    weight, lam = adversarial_weights(grad, grad_adv, per_image=False)
    assert weight.item() == lam.item() == pytest.approx(5 / 2**0.5)
    weight, lam = adversarial_weights(grad, grad_adv, per_image=True)
    assert weight.flatten().tolist() == pytest.approx([5.0, 0.0], abs=1e-6)
    assert lam.item() == pytest.approx(2.5)


def test_each_image_of_a_mixed_batch_pulls_on_the_generator_alike(tmp_path):
    """Each image's perceptual loss is scaled by α_mid/α_i (dial.balance_pull): as is, an
    α=1000 image's gradient would be about 1000× an α=1 image's; balanced, they are within 10×,
    and each keeps its direction, so its own optimum stays where it was."""
    from gan_stylizer.dial import balance_pull

    torch.manual_seed(0)
    content = torch.rand(2, 3, 32, 32)
    stylized = torch.rand(2, 3, 32, 32)
    strength = torch.tensor([0.0, 1.0])  # α = 1 and α = 1000 in one batch
    _, step = output_gradient_probe(tmp_path, **{"loss.adv": 0.0})
    norms = step(content, stylized, strength, False).flatten(1).norm(dim=1)
    assert 0.1 < (norms[1] / norms[0]).item() < 10
    alphas = torch.tensor([1.0, 1000.0])
    assert balance_pull(torch.ones(2), alphas, 1.0, 1000.0).tolist() == pytest.approx(
        [1000**0.5, 1000**0.5 / 1000]
    )


def test_training_strengths_are_drawn_towards_the_ends_and_beyond(tmp_path):
    """The draws (dial.sample_strengths): arcsine, twice uniform's share near each end; 30%
    exactly at an end; stretched over [−0.1, 1.1], so s = 0 and 1 lie inside the trained range;
    set by (seed, rank, step)."""
    from gan_stylizer.dial import ENDS, MARGIN, sample_strengths
    from gan_stylizer.seeding import seeded_generator

    draws = sample_strengths(40_000, torch.Generator().manual_seed(0))
    assert (MARGIN, ENDS) == (0.1, 0.3)
    assert draws.min().item() == pytest.approx(-0.1) and draws.max().item() == pytest.approx(1.1)
    assert (draws == draws.min()).float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert (draws == draws.max()).float().mean().item() == pytest.approx(0.15, abs=0.01)
    inner = (draws + 0.1) / 1.2  # back on [0, 1]
    inside = (inner > 1e-6) & (inner < 1 - 1e-6)
    near_ends = ((inner[inside] < 0.1) | (inner[inside] > 0.9)).float().mean().item()
    assert near_ends == pytest.approx(0.41, abs=0.02)  # arcsine: 20.5% each side; uniform 20%
    assert draws.mean().item() == pytest.approx(0.5, abs=0.01)  # symmetric about the middle

    system, cfg = conditioned_system(tmp_path, tmp_path)
    system.g_step = 7
    expected = sample_strengths(4, seeded_generator(cfg.seed, "strength", 0, 7))
    assert torch.equal(system._sample_strength(4), expected)
    assert torch.equal(system._sample_strength(4), expected)  # the same step draws the same
    strength = system._sample_strength(64)
    alphas = strength_to_alpha(strength, cfg.loss.alpha_min, cfg.loss.alpha_max)
    assert alphas.max().item() == pytest.approx(cfg.loss.alpha_max * 25**0.1, rel=1e-4)


def test_a_short_dial_run_trains_beyond_the_dial_and_its_generator_refuses_it(tmp_path):
    from test_training import tiny_config

    from gan_stylizer.training.run import run

    photos = tmp_path / "photos"
    for i in range(2):
        write_photo(photos / f"p{i}.png", (40, 40), seed=i)
    write_painting(tmp_path / "painting.png")
    short = {"model.generator.conditioned": True, "trainer.steps": 3, "loss.adv": 0.1}
    cfg = tiny_config(photos, tmp_path / "painting.png", **short)
    generator, _ = load_generator(run(cfg, tmp_path / "run"))
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "30% at the ends, over [-0.1, 1.1]" in card
    assert all(torch.isfinite(p).all() for p in generator.parameters())
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        generator(torch.rand(1, 3, 32, 32), 1.1)


def test_the_retired_dial_options_are_unknown_keys(tmp_path):
    from test_training import tiny_config

    painting = write_painting(tmp_path / "painting.png")
    for key in (
        "loss.adv_balance",
        "loss.perceptual_balance",
        "loss.strength_sampling",
        "loss.strength_ends",
        "loss.strength_margin",
        "trainer.lr_strength_mult",
    ):
        with pytest.raises(Exception, match=key.split(".")[-1]):
            tiny_config(tmp_path, painting, **{key: 1})
