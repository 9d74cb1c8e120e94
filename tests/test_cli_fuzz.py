"""A fuzzer over the command lines (hypothesis, derandomized): stylize.py, scripts/export.py and
train.py (a few steps) with adversarial values for their keys (empty, huge, negative, NaN, inf,
wrong types, path tricks, reserved characters) and hostile checkpoints. Each run is a
subprocess under a memory limit (RLIMIT_AS), a time limit and a scratch folder of its own, and
must end with an exit status in {0, 1, 2, 130}, no traceback, no file written outside its
output folder and no temporary file left."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_train_overrides, write_painting, write_photo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hardening import hostile_checkpoint

REPO = Path(__file__).resolve().parents[1]
MEMORY = 6 * 2**30  # bytes of address space per run: torch and Lightning need about 3 GB
STATUSES = {0, 1, 2, 130}

# Values of every kind a key can be given: numbers at and past their edges, non-numbers,
# paths that climb or point elsewhere, Hydra's reserved characters, control characters.
HOSTILE = [
    "", "0", "-1", "1", "0.5", "3", "-0.0", "1e309", "-1e309", "nan", "inf", "-inf",
    "999999999", "1e-300", "2147483648", "abc", "true", "null", "[]", "[1,2]", "{}", "0x10",
    "'a=b'", "'x,y'", "日本語", "'../../escaped'", "'/etc/passwd'", "'a/b'", "'..'", "'\\n'",
    "' '", "'%s%n'", "'${oc.env:HOME}'",
]  # fmt: skip
STYLIZE_KEYS = [
    "size", "scale", "tile", "strength", "batch_size", "precision", "device", "overwrite",
    "preserve_color", "grid", "lr", "tol", "optimizer", "init", "loss.alpha",
    "style.size", "style.name", "seed",
]  # fmt: skip
EXPORT_KEYS = ["format", "overwrite", "check"]
TRAIN_KEYS = [
    "name", "style.name", "seed", "trainer.lr_g", "trainer.ema_decay",
    "trainer.threads", "trainer.clip_grad", "data.image_size", "data.batch_size",
    "loss.alpha", "loss.adv", "loss.r1", "model.generator.channels", "style.size",
]  # fmt: skip
OUTPUTS = ["out/", "out/x.png", "out/x.xyz", "out/noext", "out/日本語.jpg", "out/a=b.png"]
CHECKPOINTS = [
    "good", "nan weights", "config is text", "state_dict is a list", "huge channels",
    "name ../../escaped", "name /tmp/abs", "name a\nb",
]  # fmt: skip

try:
    import onnxruntime  # noqa: F401

    EXPORTS = [
        '{"name": "../../escaped", "strength": "yes"}',
        '{"name": ["a", {"b": 1}]}',
        "[1, 2, 3]",
        "not json at all",
    ]
except ImportError:  # the onnx extra is not installed
    EXPORTS = []

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def files_below(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def run_and_check(scratch: Path, script: str, args: list[str], allowed: list[Path]) -> None:
    """Run in `scratch`; allowed: the folders where new files may appear."""
    before = files_below(scratch)
    try:
        proc = subprocess.run(
            [sys.executable, str(REPO / script), *args],
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=240,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} {args}: still running after 240 s")
    shown = f"{script} {args}: rc {proc.returncode}\n{proc.stderr[-3000:]}"
    last = proc.stderr.strip().splitlines()[-1:] or [""]
    print(f"{script}: rc {proc.returncode}: {' '.join(args[2:])[-90:]} -> {last[0][:150]}")
    assert proc.returncode in STATUSES, shown
    assert "Traceback" not in proc.stderr, shown
    new = files_below(scratch) - before
    outside = [p for p in new if not any(a == p or a in p.parents for a in allowed)]
    assert not outside, f"{shown}\nwritten outside the output folder: {outside}"
    leftovers = [p for p in files_below(scratch) if ".tmp" in p.name]
    assert not leftovers, f"{shown}\ntemporary files left: {leftovers}"


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """The photo, the painting and one checkpoint of each hostile kind, made once."""
    root = tmp_path_factory.mktemp("fuzz_material")
    photo = write_photo(root / "photo.png", (48, 36), seed=4)
    painting = write_painting(root / "painting.png")
    ckpts = {
        kind: hostile_checkpoint(root / f"{i}.ckpt", kind) for i, kind in enumerate(CHECKPOINTS)
    }
    if EXPORTS:  # exported models whose JSON is crafted: a climbing name, wrong types
        from gan_stylizer.checkpoints import load_generator
        from gan_stylizer.inference.export import export_generator

        generator, _ = load_generator(ckpts["good"])
        for i, crafted in enumerate(EXPORTS):
            model, info = export_generator(generator, "onnx", root / f"e{i}.onnx", "tiny")
            info.write_text(crafted)
            ckpts[f"export {i}"] = model
    photos = root / "photos"
    for i in range(3):
        write_photo(photos / f"p{i}.png", (64, 48), seed=10 + i)
    return {"photo": photo, "painting": painting, "ckpts": ckpts, "photos": photos}


def scratch_folder(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    return scratch


@pytest.mark.slow
@SETTINGS
@given(
    ckpt=st.sampled_from([None, *CHECKPOINTS, *(f"export {i}" for i in range(len(EXPORTS)))]),
    output=st.sampled_from(OUTPUTS),
    keys=st.lists(st.tuples(st.sampled_from(STYLIZE_KEYS), st.sampled_from(HOSTILE)), max_size=3),
)
def test_stylize_command_lines(tmp_path, material, ckpt, output, keys):
    scratch = scratch_folder(tmp_path)
    photo = shutil.copy(material["photo"], scratch / "photo.png")
    args = [f"input={photo}", f"output={output}", f"style.path={material['painting']}"]
    args += [f"ckpt={material['ckpts'][ckpt]}"] if ckpt else ["steps=2", "loss.vgg.weights=none"]
    args += [f"{key}={value}" for key, value in keys]
    run_and_check(scratch, "stylize.py", args, [scratch / "out"])


@pytest.mark.slow
@SETTINGS
@given(
    ckpt=st.sampled_from(CHECKPOINTS),
    output=st.sampled_from(["out/m.onnx", "out/m.pt2", "out/m.xyz", "out/", "out/'a,b'.onnx"]),
    keys=st.lists(st.tuples(st.sampled_from(EXPORT_KEYS), st.sampled_from(HOSTILE)), max_size=2),
)
def test_export_command_lines(tmp_path, material, ckpt, output, keys):
    pytest.importorskip("onnxscript")
    scratch = scratch_folder(tmp_path)
    args = [f"ckpt={material['ckpts'][ckpt]}", f"output={output}", "check=false"]
    args += [f"{key}={value}" for key, value in keys]
    run_and_check(scratch, "scripts/export.py", args, [scratch / "out"])


@pytest.mark.slow
@settings(SETTINGS, max_examples=6)
@given(keys=st.lists(st.tuples(st.sampled_from(TRAIN_KEYS), st.sampled_from(HOSTILE)), max_size=2))
def test_train_command_lines(tmp_path, material, keys):
    scratch = scratch_folder(tmp_path)
    args = [*tiny_train_overrides(material["photos"], material["painting"])]
    args += ["trainer.steps=2", "hydra.run.dir=out/run"]
    args += [f"{key}={value}" for key, value in keys]
    run_and_check(scratch, "train.py", args, [scratch / "out"])
