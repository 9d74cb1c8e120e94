"""Input collection and output planning for stylize.py: files, folders, globs; never an input."""

from __future__ import annotations

import pytest
from conftest import write_photo

from gan_stylizer.config import ConfigError
from gan_stylizer.stylize import collect_inputs, plan_outputs


def test_single_file_default_output_is_beside_it(tmp_path):
    photo = write_photo(tmp_path / "cat.jpg", (8, 8), 0)
    files, root = collect_inputs(str(photo))
    assert files == [photo] and root is None
    assert plan_outputs(files, root, None, "starry") == [(photo, tmp_path / "cat_starry.png")]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert plan_outputs(files, root, str(out_dir), "s")[0][1] == out_dir / "cat_s.png"
    assert plan_outputs(files, root, str(tmp_path / "x.jpg"), "s")[0][1] == tmp_path / "x.jpg"


def test_folder_is_mirrored_recursively(tmp_path):
    a = write_photo(tmp_path / "in" / "a.jpg", (8, 8), 0)
    b = write_photo(tmp_path / "in" / "deep" / "b.png", (8, 8), 1)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    files, root = collect_inputs(str(tmp_path / "in"))
    assert files == [a, b]
    pairs = plan_outputs(files, root, None, "s")
    assert [dst for _, dst in pairs] == [
        tmp_path / "in_s" / "a.png",
        tmp_path / "in_s" / "deep" / "b.png",
    ]


def test_same_stem_in_one_folder_gets_distinct_outputs(tmp_path):
    write_photo(tmp_path / "in" / "a.jpg", (8, 8), 0)
    write_photo(tmp_path / "in" / "a.png", (8, 8), 1)
    pairs = plan_outputs(*collect_inputs(str(tmp_path / "in")), str(tmp_path / "o"), "s")
    assert len({dst for _, dst in pairs}) == 2


def test_glob_input(tmp_path):
    for i in range(3):
        write_photo(tmp_path / f"p{i}.png", (8, 8), i)
    files, root = collect_inputs(str(tmp_path / "p*.png"))
    assert len(files) == 3 and root is None
    with pytest.raises(ConfigError, match="folder, not a file"):
        plan_outputs(files, root, str(tmp_path / "one.png"), "s")
    with pytest.raises(ConfigError, match="matches no files"):
        collect_inputs(str(tmp_path / "q*.png"))


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        collect_inputs(str(tmp_path / "nope.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        collect_inputs(str(tmp_path / "empty"))
