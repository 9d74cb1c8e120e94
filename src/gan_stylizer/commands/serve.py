"""The serve command: the local web page (gan_stylizer.web) on 127.0.0.1, until Ctrl-C.
`python app.py` and `gan-stylizer serve` call main()."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_stylizer.commands.cli import fail_cleanly
from gan_stylizer.commands.overrides import check, register, run_hydra
from gan_stylizer.config.compose import to_dataclass
from gan_stylizer.config.schema import ServeConfig
from gan_stylizer.config.validate import validate_serve
from gan_stylizer.errors import ConfigError

# The page's fonts: the machine's own (the default theme asks Google Fonts, which an offline
# machine cannot reach, and the page would wait for them).
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "monospace"]


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def run(cfg: ServeConfig) -> None:
    """Serve the page until Ctrl-C or SIGTERM; its work folder is removed on the way out."""
    validate_serve(cfg)
    work = Path(tempfile.mkdtemp(prefix="gan-stylizer-serve-"))
    try:
        # Gradio reads its upload folder when it is imported: set it first, to the work folder.
        os.environ["GRADIO_TEMP_DIR"] = str(work / "uploads")
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
        try:
            import gradio as gr
        except ImportError:
            raise ConfigError("serve needs Gradio: pip install 'gan-stylizer[serve]'") from None
        from gan_stylizer.devices import pick_device
        from gan_stylizer.styles import data_dir_of
        from gan_stylizer.web.catalogue import Models, find_models
        from gan_stylizer.web.page import build

        entries, skipped = find_models(cfg.models)
        for line in skipped:
            print(line)
        if not entries:
            raise ConfigError("no models: the zoo is not installed and models= found none")
        models = Models(entries, cfg.device, cfg.precision, cfg.keep_models)
        styles_dir = data_dir_of(cfg.data_dir) / "styles"
        page = build(models, work, styles_dir, cfg.concurrency)
        page.queue(default_concurrency_limit=cfg.concurrency, max_size=cfg.queue_size)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
        # SIGTERM (kill, a service manager) stops the server as Ctrl-C does, cleanup included.
        signal.signal(signal.SIGTERM, _stop)
        try:
            page.launch(
                server_name=cfg.host,
                server_port=cfg.port or None,
                max_file_size=f"{cfg.max_upload_mb}mb",
                prevent_thread_lock=True,
                show_error=True,
                quiet=True,
                ssr_mode=False,
                inbrowser=False,
                theme=gr.themes.Default(font=FONTS, font_mono=MONO),
            )
        except OSError as err:  # the port is taken, the address is not this machine's
            raise ConfigError(f"host={cfg.host} port={cfg.port}: cannot serve ({err})") from None
        print(f"serving {len(entries)} models on {page.local_url} (on {pick_device(cfg.device)})")
        if not is_local(cfg.host):
            print(
                f"warning: host={cfg.host} opens the page to the network: anyone who reaches "
                "this machine can upload photos and use its CPU, with no password"
            )
        print(f"Ctrl-C stops it; its files are in {work}, removed on exit", flush=True)
        try:
            page.block_thread()
        finally:
            page.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print("stopped; work folder removed", flush=True)


GROUPS = ()
PATH_KEYS = ("models", "data_dir")
register(
    "serve",
    ServeConfig,
    GROUPS,
    usage="python app.py [models=FOLDER] [host=127.0.0.1] [port=7860]   (or: gan-stylizer serve)",
    about=(
        "A local web page: upload photos, pick a model (the zoo, and the checkpoints and "
        "exports below models=), slide the strength, download PNGs. It binds to this machine "
        "only unless host= says otherwise."
    ),
)


@hydra.main(config_path="../configs", config_name="serve", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with fail_cleanly():
        run(to_dataclass(cfg, ServeConfig))


def main() -> None:
    """The command line: checked against the schema, then Hydra."""
    check(sys.argv[1:], ServeConfig, GROUPS, PATH_KEYS)
    run_hydra(_hydra_main)


if __name__ == "__main__":
    main()
