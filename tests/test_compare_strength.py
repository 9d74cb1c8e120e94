"""research/compare_strength.py end to end on tiny runs: it trains the conditioned model and one
dedicated model per point to the same budget, reuses them, evaluates, and refuses what does not
fit (research/trainings.py is the part shared with compare.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_research, write_painting, write_photo
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "research" / "compare_strength.py"


def compare(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def setup(tmp_path: Path) -> list[str]:
    for i, size in enumerate([(80, 60), (64, 96), (100, 70), (72, 72)]):
        write_photo(tmp_path / "photos" / f"p{i}.png", size, seed=i)
    painting = write_painting(tmp_path / "painting.png")
    return [
        "train=photos",
        "val=photos",
        f"style_path={painting}",
        "size=48",
        "threads=2",
        "jobs=3",
        "points=0,1",
        "curve=0.5",
        "sheet_photos=2",
        "sheet_height=32",
        "--",
        "debug=fast",
        "loss.vgg.weights=none",
        "style.name=test",
    ]


@pytest.mark.slow
def test_trains_three_runs_to_one_budget_reuses_them_and_reports(tmp_path, setup):
    first = compare(tmp_path, "steps=3", *setup)
    assert first.returncode == 0, first.stderr[-3000:]
    for key in ("conditioned", "alpha_1", "alpha_25"):
        assert f"{key}: training 3 steps" in first.stdout
    report = tmp_path / "outputs" / "strength" / "report"
    results = json.loads((report / "results.json").read_text())
    assert results["trained_steps"] == {"conditioned": 3, "alpha_1": 3, "alpha_25": 3}
    assert results["configs"]["alpha_25"]["loss"]["alpha"] == 25.0
    assert results["configs"]["conditioned"]["model"]["generator"]["conditioned"] is True
    assert sorted(results["conditioned_curve"]) == ["0", "0.5", "1"]  # the points join the curve
    for point in ("0", "1"):
        match = results["match"][point]
        for metric in ("style", "content", "swd"):
            cond = results["conditioned_curve"][point][metric]
            dedicated = results["dedicated"][point][metric]
            assert match["ratios"][metric] == pytest.approx(cond / dedicated)
            assert match["within"][metric] == (abs(cond / dedicated - 1) <= 0.15)
    assert len(results["per_image"]["conditioned_s0.5"]) == 4
    curves = [
        [results["per_image"][f"conditioned_s{s}"][i]["style"] for s in ("0", "0.5", "1")]
        for i in range(4)
    ]
    falling = sum(a > b > c for a, b, c in curves)
    assert results["style_loss_monotonic_photos"] == falling
    assert f"on {falling} of 4 photos alone" in (report / "results.md").read_text()
    text = (report / "results.md").read_text()
    assert "s=0: conditioned" in text and "α=25: dedicated" in text and "ratio" in text
    # Each model on its own training objective, on two 32-px crops (debug=fast) per photo.
    assert "Each model on the objective it was trained for" in text
    for point, alpha in (("0", 1.0), ("1", 25.0)):
        objective = results["training_objective"][point]
        assert objective["alpha"] == pytest.approx(alpha) and objective["crops"] == 8
        assert objective["ratio"] == pytest.approx(
            objective["conditioned"] / objective["dedicated"]
        )
        assert 0 <= objective["conditioned_lower"] <= 8
        assert f"{objective['conditioned_lower']} of 8 crops" in text
    # Rows: photos; columns: the photo, the conditioned model at 0, 0.5, 1, and the dedicated
    # models after their points: 6 cells per row. The first photo is landscape, the second
    # portrait: its row is taller, so that both rows span the sheet without white space.
    sheet = Image.open(report / "strength_sheet.png").convert("L")
    width, height = sheet.size
    assert width > 6 * 32 and height > 2 * 32 + 4
    for top, bottom in ((0, 32), (36, height)):
        column = sheet.crop((width - 1, top, width, bottom))
        assert column.getextrema()[0] < 255, (top, bottom)  # not white to the edge

    # A rerun reuses all three runs, and with reuse= every evaluation (the dedicated models and
    # the conditioned one at its three strengths); a shorter budget takes the checkpoint kept
    # at that step. The photos folder given as an absolute path is the same folder.
    earlier = "reuse=outputs/strength/report/results.json"
    absolute = [f"val={tmp_path / 'photos'}" if a == "val=photos" else a for a in setup]
    again = compare(tmp_path, "steps=3", "out=again", earlier, *absolute)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ": training " not in again.stdout and again.stdout.count("reusing") == 8
    assert again.stdout.count("reusing its evaluation") == 5
    rerun = json.loads((tmp_path / "again" / "results.json").read_text())
    for part in ("dedicated", "conditioned_curve", "training_objective"):
        assert rerun[part] == results[part], part
    # A checkpoint file written again (retrained at the same path): its evaluations are not
    # reused; evaluated again they are the same numbers.
    ckpt = tmp_path / "outputs" / "strength" / "conditioned" / "checkpoints" / "last.ckpt"
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))
    touched = compare(tmp_path, "steps=3", "out=again", earlier, *setup)
    assert touched.returncode == 0, touched.stderr[-3000:]
    assert touched.stdout.count("reusing its evaluation") == 2
    rerun = json.loads((tmp_path / "again" / "results.json").read_text())
    for point, metrics in results["conditioned_curve"].items():
        for metric in ("style", "content", "swd", "ssim", "edges"):
            assert rerun["conditioned_curve"][point][metric] == metrics[metric], (point, metric)
    other_ruler = compare(tmp_path, "steps=3", "out=again", "limit=3", earlier, *setup)
    assert other_ruler.returncode == 0 and "evaluating everything" in other_ruler.stdout
    shorter = compare(tmp_path, "steps=2", "out=short", *setup)
    assert shorter.returncode == 0, shorter.stderr[-3000:]
    assert "step_000002.ckpt (2 steps)" in shorter.stdout
    assert json.loads((tmp_path / "short" / "results.json").read_text())["trained_steps"] == {
        "conditioned": 2,
        "alpha_1": 2,
        "alpha_25": 2,
    }

    assert "balanced per image" in text  # the dial's built-in adversarial share

    # A run folder trained with other weights is refused, in one line, before any work.
    for args, problem in [
        (("alpha_max=30", *setup), "alpha_min, alpha_max = (1.0, 25.0)"),
    ]:
        other = compare(tmp_path, "steps=3", *args)
        assert other.returncode == 2
        lines = other.stderr.strip().splitlines()
        assert len(lines) == 1 and "not the conditioned recipe" in lines[0], other.stderr
        assert problem in lines[0]
    # conditioned= names another run folder: a variant is trained beside the same dedicated runs.
    variant = compare(tmp_path, "steps=3", "conditioned=variant", "out=variant", *setup)
    assert variant.returncode == 0, variant.stderr[-3000:]
    assert "conditioned: training 3 steps into outputs/strength/variant" in variant.stdout
    assert variant.stdout.count("reusing") == 2
    # conditioned_steps=: the conditioned model alone gets another budget (here one more step,
    # resumed); the dedicated runs keep theirs, and the report says so.
    longer = compare(
        tmp_path, "steps=3", "conditioned_steps=4", "conditioned=variant", "out=longer", *setup
    )
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "conditioned: resuming" in longer.stdout and "at step 3 of 4" in longer.stdout
    results = json.loads((tmp_path / "longer" / "results.json").read_text())
    assert results["trained_steps"] == {"conditioned": 4, "alpha_1": 3, "alpha_25": 3}
    assert (
        "the conditioned model trained 4 generator steps, each dedicated one 3"
        in (tmp_path / "longer" / "results.md").read_text()
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["points=0,2"], "every strength must be in [0, 1]"),
        (["points=0,0"], "listed twice"),
        (["points=a"], "comma-separated numbers"),
        (["alpha_min=5", "alpha_max=1"], "0 < alpha_min < alpha_max"),
        (["bogus=1"], "unknown argument 'bogus=1'"),
        (["conditioned_steps=0"], "steps and conditioned_steps must be >= 1"),
        (["steps=x"], "steps='x' is not a number"),
    ],
)
def test_bad_arguments_get_one_line(tmp_path, args, message):
    (tmp_path / "photos").mkdir()
    proc = compare(tmp_path, "train=photos", "val=photos", *args, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_a_missing_folder_gets_one_line(tmp_path):
    proc = compare(tmp_path, "train=nowhere", "val=nowhere", timeout=120)
    assert proc.returncode == 2 and "train= must name a folder" in proc.stderr


def fake_checkpoint(path: Path, steps: int, alpha: float = 5.0) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"loss": {"alpha": alpha}, "model": {"generator": {}}}
    torch.save({"hyper_parameters": {"config": config}, "gan_stylizer": {"g_step": steps}}, path)
    return path


def test_the_budget_is_exact(tmp_path):
    trainings = load_research("trainings")
    run = tmp_path / "run"

    def check(config):
        return None if config["loss"]["alpha"] == 5.0 else f"alpha={config['loss']['alpha']}"

    training = trainings.Training("a5", run, ["loss.alpha=5"], check)
    ckpt, overrides = trainings.plan(training, steps=4, threads=1)
    assert ckpt == run / "checkpoints" / "last.ckpt" and "trainer.steps=4" in overrides
    assert "ckpt_path=last" not in overrides  # nothing there: from scratch

    fake_checkpoint(run / "checkpoints" / "last.ckpt", steps=6)
    ckpt, overrides = trainings.plan(training, steps=8, threads=1)
    assert overrides[-1] == "ckpt_path=last"  # fewer steps: resume
    assert trainings.plan(training, steps=6, threads=1) == (ckpt, None)  # exactly: reuse
    with pytest.raises(trainings.UsageError, match="holds 6 generator steps, more than steps=4"):
        trainings.plan(training, steps=4, threads=1)  # more, and nothing kept at 4
    kept = fake_checkpoint(run / "checkpoints" / "step_000004.ckpt", steps=4)
    assert trainings.plan(training, steps=4, threads=1) == (kept, None)

    fake_checkpoint(run / "checkpoints" / "last.ckpt", steps=6, alpha=25.0)
    with pytest.raises(trainings.UsageError, match="alpha=25.0, not the a5 recipe"):
        trainings.plan(training, steps=6, threads=1)


def test_compare_py_refuses_a_run_of_the_other_recipe(tmp_path):
    import torch

    compare = load_research("compare")
    (tmp_path / "photos").mkdir()
    args = compare.parse_args([f"train={tmp_path / 'photos'}", f"val={tmp_path / 'photos'}"])
    args["runs"] = str(tmp_path / "runs")
    gan, johnson = compare.recipes(args)
    assert "experiment=starry_night" in gan.overrides
    assert "experiment=johnson2016" in johnson.overrides
    last = tmp_path / "runs" / "gan" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    config = {"loss": {"adv": 0.0}, "model": {"generator": {}}}
    torch.save({"hyper_parameters": {"config": config}, "gan_stylizer": {"g_step": 9}}, last)
    trainings = sys.modules["trainings"]
    with pytest.raises(trainings.UsageError, match="loss.adv=0.0, not the gan recipe"):
        trainings.plan(gan, steps=9, threads=1)
