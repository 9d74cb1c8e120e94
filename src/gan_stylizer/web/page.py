"""The local web page: upload photos, pick a model, slide the strength, download the PNGs.

stylize_files() is the work, without Gradio; build() lays the page out around it. Every file
the page writes goes below its own work folder (uploads, which Gradio writes, and results),
which `gan-stylizer serve` removes when it stops.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gan_stylizer.errors import CheckpointError, ConfigError, ImageError
from gan_stylizer.io.images import read_rgb, resize_pil
from gan_stylizer.web.catalogue import Models

SIZES = ("original", "256", "512", "1024", "2048")
STRIP = (0.0, 0.25, 0.5, 0.75, 1.0)  # the strength strip's strengths, side by side
GAP = 4  # white px between the strip's images
KEEP_RESULTS_S = 3600  # results older than this are removed at the next request


@dataclass
class Outcome:
    files: list[Path]  # the PNGs written
    problems: list[str]  # one line per photo that was refused
    seconds: float


def safe_stem(name: str) -> str:
    """A file name's stem as one harmless path part (uploads can be named anything)."""
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem).strip("._") or "photo"
    return stem[:80]


def strip_of(images: list[Image.Image]) -> Image.Image:
    """The images side by side on white, GAP px apart."""
    width = sum(i.width for i in images) + GAP * (len(images) - 1)
    out = Image.new("RGB", (width, max(i.height for i in images)), "white")
    x = 0
    for image in images:
        out.paste(image, (x, 0))
        x += image.width + GAP
    return out


def prune(results: Path, older_than_s: float = KEEP_RESULTS_S) -> None:
    """Remove result files older than older_than_s, and the folders left empty."""
    cutoff = time.time() - older_than_s
    for folder in results.glob("*"):
        for file in folder.glob("*.png"):
            if file.stat().st_mtime < cutoff:
                file.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def stylize_files(
    models: Models,
    results: Path,
    files: list[str],
    model_key: str,
    strength: float | None,
    preserve_colors: bool,
    size: str,
    strip: bool,
) -> Outcome:
    """Each photo through the model, as `<photo>_<model>-gan_s<strength>.png` (or `_strip`)
    below `results`. A photo that cannot be read is refused with the CLI's one-line reason;
    the others go on. Raises ConfigError or CheckpointError for settings that fit no photo."""
    started = time.perf_counter()
    if size not in SIZES:
        raise ConfigError(f"size={size!r}: one of {', '.join(SIZES)}")
    entry = models.entry(model_key)
    stylizer = models.get(model_key)
    if entry.conditioned:
        if strength is None or not 0.0 <= float(strength) <= 1.0:
            raise ConfigError(f"strength={strength}: a number from 0 to 1")
        strength = float(strength)
    else:
        strength = None
    if strip and not entry.conditioned:
        raise ConfigError(f"{model_key} has no strength dial: no strength strip")
    prune(results)
    folder = results / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    written, problems = [], []
    label = safe_stem(entry.key.removesuffix("/checkpoints/last.ckpt").replace("/", "_"))
    for file in files:
        shown = Path(file).name
        try:
            photo = read_rgb(file)
        except ImageError as err:
            problems.append(f"{shown}: {err.problem}")
            continue
        if size != "original":
            photo = resize_pil(photo, int(size))
        if strip:
            parts = [stylizer(photo, s, preserve_colors) for s in STRIP]
            image, suffix = strip_of(parts), "_strip"
        else:
            image = stylizer(photo, strength, preserve_colors)
            suffix = f"_s{strength:.2f}" if strength is not None else ""
        colour = "_colour" if preserve_colors else ""
        out = folder / f"{safe_stem(shown)}_{label}-gan{suffix}{colour}.png"
        image.save(out, format="PNG")
        written.append(out)
    return Outcome(written, problems, time.perf_counter() - started)


def build(models: Models, work: Path, styles_dir: Path, concurrency: int):
    """The Gradio Blocks of the page (launched by gan_stylizer.commands.serve)."""
    import gradio as gr

    results = work / "results"
    keys = list(models.entries)
    first = models.entry("starry_night" if "starry_night" in keys else keys[0])

    def show_model(key: str):
        try:
            entry = models.entry(key)
            picture, what = models.thumbnail(key, styles_dir)
        except (CheckpointError, ConfigError, ImageError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        return (
            picture,
            f"{entry.describe()}  \nThe picture: {what}.",
            gr.update(visible=entry.conditioned),
            gr.update(visible=entry.conditioned),
        )

    def run(files, key, strength, preserve, size, strip):
        if not files:
            raise gr.Error(
                "Upload a photo first (drag it onto the Photos box).", print_exception=False
            )
        paths = [f if isinstance(f, str) else f.name for f in files]
        try:
            outcome = stylize_files(models, results, paths, key, strength, preserve, size, strip)
        except (CheckpointError, ConfigError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        for problem in outcome.problems:
            print(f"refused: {problem}", flush=True)
        if not outcome.files:
            raise gr.Error("; ".join(outcome.problems), print_exception=False)
        lines = [
            f"{len(outcome.files)} image(s) in {outcome.seconds:.2f} s with {key}"
            + (f" at strength {strength:.2f}" if models.entry(key).conditioned else "")
        ]
        print(f"stylized: {lines[0]}", flush=True)
        lines += [f"refused: {p}" for p in outcome.problems]
        gallery = [(str(p), p.name) for p in outcome.files]
        return gallery, [str(p) for p in outcome.files], "  \n".join(lines)

    with gr.Blocks(title="gan-stylizer", analytics_enabled=False) as page:
        gr.Markdown(
            "# gan-stylizer\nDrop photos, pick a painting's model, press **Stylize**: one "
            "pass of a trained generator. Everything stays on this machine."
        )
        with gr.Row():
            with gr.Column(scale=1):
                photos = gr.File(
                    label="Photos (JPEG, PNG, WebP, TIFF, ...; one or several)",
                    file_count="multiple",
                    type="filepath",
                    elem_id="photos",
                )
                model = gr.Dropdown(keys, value=first.key, label="Model", elem_id="model")
                with gr.Row():
                    thumb = gr.Image(
                        label="Painting", interactive=False, height=170, elem_id="painting"
                    )
                    about = gr.Markdown(elem_id="about")
                strength = gr.Slider(
                    0.0, 1.0, value=0.5, step=0.05, label="Strength (0: light, 1: strong)",
                    visible=first.conditioned, elem_id="strength",
                )  # fmt: skip
                strip = gr.Checkbox(
                    label="Strength strip: 0, 0.25, 0.5, 0.75 and 1 side by side",
                    visible=first.conditioned,
                    elem_id="strip",
                )
                preserve = gr.Checkbox(label="Keep the photo's colours", elem_id="preserve")
                size = gr.Radio(list(SIZES), value="1024", label="Output long side (px)")
                button = gr.Button("Stylize", variant="primary", elem_id="stylize")
            with gr.Column(scale=2):
                gallery = gr.Gallery(
                    label="Result",
                    format="png",
                    columns=2,
                    height=560,
                    object_fit="contain",
                    elem_id="result",
                )
                downloads = gr.File(
                    label="Download (PNG)", file_count="multiple", interactive=False,
                    elem_id="downloads",
                )  # fmt: skip
                status = gr.Markdown(elem_id="status")
        model.change(show_model, model, [thumb, about, strength, strip], api_name=False)
        page.load(show_model, model, [thumb, about, strength, strip], api_name=False)
        button.click(
            run,
            [photos, model, strength, preserve, size, strip],
            [gallery, downloads, status],
            api_name="stylize",
            concurrency_limit=concurrency,
        )
    return page
