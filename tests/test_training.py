"""The GAN system and run(): one step, checkpoints, resume, guards. Tiny sizes, CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gan_stylizer.checkpoints import load_generator
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import TrainConfig
from gan_stylizer.config.validate import validate_train
from gan_stylizer.errors import CheckpointError, ConfigError
from gan_stylizer.training.run import run


def tiny_config(photo_dir: Path, painting: Path, **overrides) -> TrainConfig:
    cfg = {
        "data": {
            "source": "folder",
            "root": str(photo_dir),
            "image_size": 32,
            "resize_long_side": [40, 48],
            "batch_size": 2,
            "num_workers": 0,
            "val_count": 1,
            "val_size": 48,
        },
        "style": {"name": "test", "path": str(painting), "size": 64},
        "model": {
            "generator": {"channels": 4, "n_residual": 1},
            "discriminator": {"channels": 4, "n_layers": 2},
        },
        "loss": {
            "adv": 0.5,
            "tv": 1.0,
            "r1": 1.0,
            "vgg": {"weights": "none"},
            "style_layers": {"relu1_1": 0.5, "relu2_1": 0.5},
            "content_layer": "relu2_1",
        },
        "trainer": {
            "steps": 2,
            "warmup_steps": 0,
            "ckpt_every": 1,
            "keep_every": 1,  # step_NNNNNN.ckpt copies, which some tests compare
            "image_every": 1,
            "log_every": 1,
            "precision": "32",
            "accelerator": "cpu",
            "devices": 1,
        },
    }
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return to_dataclass(cfg, TrainConfig)


def test_run_writes_checkpoints_samples_and_logs(tmp_path, photo_dir, painting):
    out = tmp_path / "run"
    last = run(tiny_config(photo_dir, painting), out)
    assert last == out / "checkpoints" / "last.ckpt" and last.is_file()
    assert (out / "checkpoints" / "step_000001.ckpt").is_file()
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        "step_000000.png",
        "step_000001.png",
        "step_000002.png",
    ]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert not list((out / "checkpoints").glob(".*tmp*")), "temporary files left behind"
    info = json.loads((out / "run_info.json").read_text())
    assert info["versions"]["torch"] == torch.__version__ and "config" in info
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["g_step"] == 2 and metrics["seconds_per_step"] > 0
    assert len(metrics["val"]["per_image"]) == 1
    assert {"val", "reference_eval", "g_step"} <= set(metrics["about"])  # says what each is
    assert all(math.isfinite(v) for v in metrics["val"]["mean"].values())
    ref = metrics["reference_eval"]["mean"]
    assert {"style", "content", "swd", "ssim", "edges", "seconds"} <= set(ref)
    card = (out / "model_card.md").read_text()
    assert "# Model card:" in card and "alpha=5" in card and "2 generator steps" in card
    assert f"| {ref['style']:.3g} |" in card and "(samples/step_000002.png)" in card


def test_checkpoint_is_plain_data_without_vgg(tmp_path, photo_dir, painting):
    last = run(tiny_config(photo_dir, painting), tmp_path / "run")
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    keys = ckpt["state_dict"].keys()
    assert any(k.startswith("generator.") for k in keys)
    assert any(k.startswith("g_ema.") for k in keys)
    assert any(k.startswith("discriminator.") for k in keys)
    assert not any(k.startswith("criterion.") or "vgg" in k for k in keys)
    assert len(ckpt["optimizer_states"]) == 2
    config = ckpt["hyper_parameters"]["config"]
    assert isinstance(config, dict) and config["model"]["generator"]["channels"] == 4
    assert ckpt["gan_stylizer"]["g_step"] == 2


def test_one_step_changes_g_and_d_but_not_vgg(tmp_path, photo_dir, painting):
    import gan_stylizer.training.run as train_mod

    seen = {}
    original = train_mod.StylizerSystem

    class Spy(original):
        def on_train_start(self):
            seen["g"] = [p.detach().clone() for p in self.generator.parameters()]
            seen["d"] = [p.detach().clone() for p in self.discriminator.parameters()]
            seen["vgg"] = [b.detach().clone() for b in self.criterion.vgg.buffers()]

        def on_train_end(self):
            seen["system"] = self

    cfg = tiny_config(photo_dir, painting, **{"trainer.steps": 1})
    train_mod.StylizerSystem = Spy
    try:
        run(cfg, tmp_path / "run")
    finally:
        train_mod.StylizerSystem = original
    system = seen["system"]

    def changed(before, now):
        return any(not torch.equal(a, b) for a, b in zip(before, list(now), strict=True))

    assert changed(seen["g"], system.generator.parameters())
    assert changed(seen["d"], system.discriminator.parameters())
    assert not changed(seen["vgg"], system.criterion.vgg.buffers())
    metrics = system.trainer.callback_metrics
    for key in ("train/g_style", "train/g_content", "train/g_adv", "train/d_loss", "train/g_tv"):
        assert torch.isfinite(metrics[key]), key
    # Lightning counts optimizer steps: D and G each stepped once.
    assert system.trainer.global_step == 2 and system.g_step == 1


def test_resume_continues_at_the_saved_step(tmp_path, photo_dir, painting):
    out = tmp_path / "run"
    run(tiny_config(photo_dir, painting), out)
    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    run(tiny_config(photo_dir, painting, **{"trainer.steps": 4, "ckpt_path": "last"}), out)
    second = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["gan_stylizer"]["g_step"] == 2
    assert second["gan_stylizer"]["g_step"] == 4
    assert second["global_step"] == 8  # 2 optimizer steps per generator step
    assert (out / "checkpoints" / "step_000003.ckpt").is_file()
    assert not (out / "checkpoints" / "step_000005.ckpt").exists()


def test_resume_from_a_sibling_run_directory(tmp_path, photo_dir, painting):
    run(tiny_config(photo_dir, painting), tmp_path / "runs" / "a")
    cfg = tiny_config(photo_dir, painting, **{"trainer.steps": 3, "ckpt_path": "last"})
    run(cfg, tmp_path / "runs" / "b")
    ckpt = torch.load(tmp_path / "runs" / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_stylizer"]["g_step"] == 3


def test_ckpt_path_last_without_any_checkpoint_is_a_clear_error(tmp_path, photo_dir, painting):
    with pytest.raises(ConfigError, match="last.ckpt"):
        run(tiny_config(photo_dir, painting, ckpt_path="last"), tmp_path / "runs" / "x")


def test_generator_loads_from_checkpoint_and_matches_g_ema(tmp_path, photo_dir, painting):
    last = run(tiny_config(photo_dir, painting), tmp_path / "run")
    generator, config = load_generator(last)
    state = torch.load(last, weights_only=True)["state_dict"]
    assert torch.equal(generator.encoder[0][1].weight, state["g_ema.encoder.0.1.weight"])
    assert config["style"]["path"].endswith("painting.png")
    out = generator(torch.rand(1, 3, 37, 29))
    assert out.shape == (1, 3, 37, 29)


def test_non_finite_losses_are_skipped_then_stop_the_run(
    tmp_path, photo_dir, painting, monkeypatch
):
    from gan_stylizer.perceptual import PerceptualCriterion
    from gan_stylizer.system import TrainingDiverged

    real_forward = PerceptualCriterion.forward

    def nan_forward(self, stylized, content_target):
        l_style, l_content = real_forward(self, stylized, content_target)
        return l_style * float("nan"), l_content

    monkeypatch.setattr(PerceptualCriterion, "forward", nan_forward)
    cfg = tiny_config(photo_dir, painting, **{"trainer.steps": 10, "trainer.max_nonfinite": 3})
    with pytest.raises(TrainingDiverged, match="3 consecutive steps"):
        run(cfg, tmp_path / "run")


def test_bad_checkpoints_get_clear_errors(tmp_path):
    truncated = tmp_path / "t.ckpt"
    truncated.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="t.ckpt"):
        load_generator(truncated)
    foreign = tmp_path / "f.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="not a gan-stylizer checkpoint"):
        load_generator(foreign)

    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    hostile = tmp_path / "h.ckpt"
    torch.save({"x": Payload()}, hostile)
    with pytest.raises(CheckpointError, match="refused"):
        load_generator(hostile)
    assert not (tmp_path / "pwned").exists()


def test_wrong_shapes_in_a_checkpoint_are_named(tmp_path, photo_dir, painting):
    last = run(tiny_config(photo_dir, painting), tmp_path / "run")
    ckpt = torch.load(last, weights_only=True)
    ckpt["hyper_parameters"]["config"]["model"]["generator"]["channels"] = 8
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(bad)


@pytest.mark.parametrize(
    "override,message",
    [
        ({"data.source": "folder", "data.root": None}, "data.root"),
        ({"data.resize_long_side": [16, 20]}, "resize_long_side"),
        ({"loss.adv_type": "wgan"}, "adv_type"),
        ({"trainer.precision": "16-mixed"}, "bf16"),
        ({"loss.content_layer": "relu9_1"}, "relu9_1"),
        ({"trainer.steps": 0}, "trainer.steps"),
        ({"trainer.steps": 4, "trainer.lr_decay_steps": 5}, "lr_decay_steps=5 is more than"),
        # Found by tests/test_fuzz.py: it crashed inside D's first step.
        ({"data.image_size": 16, "model.discriminator.n_layers": 3}, "at least 24 px"),
    ],
)
def test_config_faults_are_caught_before_work(tmp_path, photo_dir, painting, override, message):
    cfg = tiny_config(photo_dir, painting, **override)
    with pytest.raises(ConfigError, match=message):
        validate_train(cfg)


def test_missing_and_empty_data_folders(tmp_path, painting):
    with pytest.raises(ConfigError, match="not a folder"):
        run(tiny_config(tmp_path / "nowhere", painting), tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        run(tiny_config(tmp_path / "empty", painting), tmp_path / "run")
    with pytest.raises(ConfigError, match="curl"):
        run(
            tiny_config(
                tmp_path,
                painting,
                **{"data.source": "coco", "data.root": None, "data_dir": str(tmp_path)},
            ),
            tmp_path / "run",
        )


def test_batch_larger_than_dataset(tmp_path, photo_dir, painting):
    with pytest.raises(ConfigError, match="batch_size"):
        run(tiny_config(photo_dir, painting, **{"data.batch_size": 50}), tmp_path / "run")


def test_a_fresh_run_never_overwrites_an_earlier_one(tmp_path, photo_dir, painting):
    out = tmp_path / "run"
    run(tiny_config(photo_dir, painting), out)
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(ConfigError, match="ckpt_path=auto"):
        run(tiny_config(photo_dir, painting, ckpt_path=None), out)
    # ckpt_path=auto (the default) resumes instead; the run is complete: nothing to train.
    assert run(tiny_config(photo_dir, painting), out) == out / "checkpoints" / "last.ckpt"
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before


def test_warmup_steps_train_g_on_content_only(tmp_path, photo_dir, painting):
    cfg = tiny_config(photo_dir, painting, **{"trainer.warmup_steps": 2})
    last = run(cfg, tmp_path / "run")
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["gan_stylizer"]["g_step"] == 2
    assert ckpt["global_step"] == 2  # only G stepped: one optimizer step per batch
    assert ckpt["optimizer_states"][1]["state"] == {}  # D's Adam never stepped


def test_lr_decay_takes_both_rates_down_over_the_last_steps(tmp_path, photo_dir, painting):
    settings = {"trainer.steps": 4, "trainer.warmup_steps": 1, "trainer.lr_decay_steps": 2}
    cfg = tiny_config(photo_dir, painting, **settings)
    last = run(cfg, tmp_path / "run")
    g, d = torch.load(last, weights_only=True)["optimizer_states"]
    # The final step (g_step 3 of 4) ran at 1/2 of each rate; steps 0 and 1 at the full ones.
    assert g["param_groups"][0]["lr"] == pytest.approx(cfg.trainer.lr_g / 2)
    assert d["param_groups"][0]["lr"] == pytest.approx(cfg.trainer.lr_d / 2)
    step1 = torch.load(tmp_path / "run/checkpoints/step_000002.ckpt", weights_only=True)
    assert step1["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(cfg.trainer.lr_g)


def test_resume_refuses_a_checkpoint_of_another_style_or_model(tmp_path, photo_dir, painting):
    from conftest import write_painting

    run(tiny_config(photo_dir, painting), tmp_path / "runs" / "a")
    other = write_painting(tmp_path / "other.png", seed=3)
    cfg = tiny_config(photo_dir, other, **{"trainer.steps": 3, "ckpt_path": "last"})
    with pytest.raises(ConfigError, match="style"):
        run(cfg, tmp_path / "runs" / "b")
    cfg = tiny_config(photo_dir, painting, **{"ckpt_path": "last", "model.generator.channels": 8})
    with pytest.raises(ConfigError, match="model"):
        run(cfg, tmp_path / "runs" / "c")


def test_a_bf16_mixed_step_trains_with_finite_losses(tmp_path, photo_dir, painting):
    cfg = tiny_config(
        photo_dir, painting, **{"trainer.precision": "bf16-mixed", "trainer.steps": 1}
    )
    last = run(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["nonfinite_skipped"] == 0
    assert all(math.isfinite(v) for v in metrics["val"]["mean"].values())
    assert torch.load(last, weights_only=True)["global_step"] == 2


def test_precision_auto_is_bf16_only_where_bf16_is_native(monkeypatch):
    from types import SimpleNamespace

    from gan_stylizer import devices
    from gan_stylizer.devices import resolve_train_precision

    def trainer(precision="auto", accelerator="auto"):
        return SimpleNamespace(precision=precision, accelerator=accelerator)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert resolve_train_precision(trainer()) == "bf16-mixed"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert resolve_train_precision(trainer()) == "32"  # emulated bf16 is slower than fp32
    assert resolve_train_precision(trainer(accelerator="mps")) == "32"
    assert resolve_train_precision(trainer("bf16-mixed")) == "bf16-mixed"  # asked for: kept
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported, expected in ((True, "bf16-mixed"), (False, "32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert resolve_train_precision(trainer()) == expected
        assert resolve_train_precision(trainer(accelerator="cpu")) == "32"


@pytest.mark.parametrize(
    "devices,nodes,expected",
    [
        (1, 1, "auto"),
        (2, 1, "ddp_find_unused_parameters_true"),
        (1, 2, "ddp_find_unused_parameters_true"),
        ([0, 1], 1, "ddp_find_unused_parameters_true"),
    ],
)
def test_several_devices_get_ddp_with_unused_parameter_detection(devices, nodes, expected):
    from gan_stylizer.config.schema import TrainerConfig
    from gan_stylizer.training.cluster import choose_strategy

    t = TrainerConfig(devices=devices, num_nodes=nodes, accelerator="cpu")
    assert choose_strategy(t) == expected
    assert choose_strategy(TrainerConfig(devices=2, strategy="ddp_spawn")) == "ddp_spawn"


def test_a_checkpoint_older_than_a_config_key_still_resumes(tmp_path, photo_dir, painting):
    # Checkpoints written before model.generator.conditioned existed lack the key; it had its
    # default (false) then, so ckpt_path=<file> must not read that as another model.
    last = run(tiny_config(photo_dir, painting), tmp_path / "old")
    ckpt = torch.load(last, weights_only=True)
    del ckpt["hyper_parameters"]["config"]["model"]["generator"]["conditioned"]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    cfg = tiny_config(photo_dir, painting, **{"trainer.steps": 3, "ckpt_path": str(old)})
    resumed = run(cfg, tmp_path / "new")
    assert torch.load(resumed, weights_only=True)["gan_stylizer"]["g_step"] == 3
    conditioned = tiny_config(
        photo_dir,
        painting,
        **{"trainer.steps": 3, "ckpt_path": str(old), "model.generator.conditioned": True},
    )
    with pytest.raises(ConfigError, match="model.generator.conditioned=False"):
        run(conditioned, tmp_path / "other")
