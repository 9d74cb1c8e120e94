"""python scripts/benchmark.py [--quick] [--ckpt PATH] [--peer PATH]: speed figures as JSON on
stdout (a benchmark, not a test).

- the machine's measured matmul peak, fp32 and bf16 (GFLOP/s);
- generator inference (batch 1) at 512² and 1024²: fp32 eager (`Generator.forward`) against the
  default path of stylize.py (`OnePass`: precision=auto, channels-last, tile=auto), in one run:
  seconds, their ratio, the mean absolute error of the default path against fp32 (in 1/255),
  achieved GFLOP/s and its fraction of the bf16 (or fp32) matmul peak; and bf16 autocast;
- a 3840x2160 photo through the default path (tiled): seconds and peak memory (the peak RSS of
  a fresh process, and its RSS before the image, both in MiB);
- onnxruntime on the exported ONNX model against PyTorch fp32 eager, at the same sizes;
- one full training step (batch 4, 256 px crops, D then G with every loss term, caffe VGG19),
  and one of the default recipe (R1 and TV off), in fp32, and under bf16 autocast where bf16 is
  native;
- the frames per second of a 720p clip through `python stylize.py` (a subprocess, start-up
  included and also subtracted), where PyAV is installed;
- --peer PATH (a pytorch/examples checkout; nothing of it is vendored here): its
  fast_neural_style `TransformerNet`, in this process, at the same sizes (fp32 eager), and its
  training step (batch 4, VGG16 to relu4_3, no discriminator; VGG16 with random weights, since
  the timing does not depend on them and nothing is downloaded), and the ratios peer / ours
  (above 1: this project is faster).
Each figure is the median of several runs after a warm-up; the machine is shared and noisy, so
compare figures from one run of this script. --quick: fewer repeats and smaller sizes, to check
that the script works (its figures mean little). --ckpt: time a trained generator (default: the
default network with random weights; the MAE is more telling with trained weights).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int, repeats: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, repeats)
    return 2 * n**3 / seconds / 1e9


def load(ckpt: str | None):
    from gan_stylizer.checkpoints import load_generator
    from gan_stylizer.models.generator import Generator

    if ckpt:
        return load_generator(ckpt)[0]
    torch.manual_seed(0)
    return Generator().eval()


def compare_paths(generator, sizes, repeats: int, device, peak: float) -> dict:
    """fp32 eager vs the default path (and bf16 autocast) at each size, in one run."""
    from gan_stylizer.devices import resolve_dtype
    from gan_stylizer.inference.onepass import OnePass

    dtype = resolve_dtype("auto", device)
    default = OnePass(generator, device, dtype, tile="auto")
    eager = generator.to(device)
    result = {"default_path": f"{dtype} channels-last, tile=auto"}
    for size in sizes:
        x = torch.rand(1, 3, size, size, device=device)
        with torch.no_grad():
            flops = count_flops(functools.partial(eager, x))
            fp32_s = timed(functools.partial(eager, x), repeats)
            default_s = timed(functools.partial(default, x), repeats)
            reference = eager(x).float().cpu()
            error = (default(x) - reference).abs().mean().item() * 255
            entry = {
                "gflop": round(flops / 1e9, 1),
                "fp32_eager_s": round(fp32_s, 4),
                "default_s": round(default_s, 4),
                "speedup": round(fp32_s / default_s, 2),
                "default_mae_255": round(error, 3),
                "fp32_eager_gflops": round(flops / fp32_s / 1e9, 1),
                "default_gflops": round(flops / default_s / 1e9, 1),
                "default_fraction_of_matmul_peak": round(flops / default_s / 1e9 / peak, 3),
            }
            if device.type == "cuda" or dtype == torch.bfloat16:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    s = timed(functools.partial(eager, x), repeats)
                entry["bf16_autocast_s"] = round(s, 4)
        result[f"{size}x{size}"] = entry
    return result


_PEAK_CHILD = """
import resource, sys, time, torch

def peak_mib():
    # VmHWM starts afresh at exec; ru_maxrss would carry over this benchmark's own peak.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from gan_stylizer.inference.onepass import OnePass
from gan_stylizer.devices import resolve_dtype
from gan_stylizer.models.generator import Generator
from gan_stylizer.checkpoints import load_generator
ckpt, h, w, tile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
g = load_generator(ckpt)[0] if ckpt else Generator().eval()
dtype = resolve_dtype("auto", torch.device("cpu"))
s = OnePass(g, "cpu", dtype, tile=tile)
s(torch.rand(1, 3, 64, 64))
before = peak_mib()
x = torch.rand(1, 3, h, w)
start = time.perf_counter()
s(x)
seconds = time.perf_counter() - start
peak = peak_mib()
print(seconds, before, peak, s.tile_size(h, w), str(dtype))
"""


def large_image(ckpt: str | None, height: int, width: int, tile: str) -> dict:
    """The default path on one large image, in a fresh process (CPU): time and peak RSS."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD, ckpt or "", str(height), str(width), tile],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        "size": f"{width}x{height}",
        "tile": int(out[3]) if out[3] != "None" else None,
        "dtype": out[4],
        "seconds": round(float(out[0]), 2),
        "rss_before_mib": round(float(out[1])),
        "peak_rss_mib": round(float(out[2])),
    }


def onnx_vs_pytorch(generator, sizes, repeats: int) -> dict:
    """onnxruntime (CPU) on the exported model against PyTorch fp32 eager."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed (pip install 'gan-stylizer[onnx]')"}
    from gan_stylizer.inference.export import export_generator

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = export_generator(generator.cpu(), "onnx", Path(tmp) / "g.onnx", "benchmark")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            with torch.no_grad():
                torch_s = timed(functools.partial(generator, x), repeats)
                reference = generator(x).numpy()
            feed = {"content": x.numpy()}
            ort_s = timed(lambda feed=feed: session.run(None, feed), repeats)
            error = abs(session.run(None, feed)[0] - reference).max()
            result[f"{size}x{size}"] = {
                "onnxruntime_s": round(ort_s, 4),
                "pytorch_fp32_s": round(torch_s, 4),
                "max_abs_diff": float(f"{error:.2g}"),
            }
    return result


def load_peer(path: str) -> dict:
    """The peer's transformer_net, vgg and utils modules, loaded from their files (no sys.path
    edit): PATH is a pytorch/examples checkout, its fast_neural_style folder or the folder of
    the modules."""
    root = Path(path)
    for folder in (root / "fast_neural_style" / "neural_style", root / "neural_style", root):
        if (folder / "transformer_net.py").is_file():
            break
    else:
        raise SystemExit(f"--peer {path}: no fast_neural_style/neural_style/transformer_net.py")
    modules = {}
    for name in ("transformer_net", "vgg", "utils"):
        spec = importlib.util.spec_from_file_location(f"peer_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


def peer_vgg(peer: dict, device) -> torch.nn.Module:
    """The peer's Vgg16, with torchvision's VGG16 built without weights (its constructor would
    download them)."""
    module = peer["vgg"]
    real = module.models.vgg16
    module.models.vgg16 = lambda *args, **kwargs: real(weights=None)
    try:
        return module.Vgg16(requires_grad=False).to(device)
    finally:
        module.models.vgg16 = real


def peer_figures(peer: dict, sizes, crop: int, repeats: int, device) -> dict:
    """The peer's one pass (batch 1, fp32 eager, pixels in its 0-255 convention) at each size
    and its training step, as its training loop does it (neural_style.py's train())."""
    torch.manual_seed(0)
    net = peer["transformer_net"].TransformerNet().to(device).eval()
    result = {}
    with torch.no_grad():
        for size in sizes:
            content = torch.rand(1, 3, size, size, device=device) * 255
            result[f"{size}x{size}_s"] = round(timed(functools.partial(net, content), repeats), 4)
    utils, vgg, mse = peer["utils"], peer_vgg(peer, device), torch.nn.MSELoss()
    net.train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    photos = torch.rand(4, 3, crop, crop, device=device) * 255
    with torch.no_grad():
        grams = [utils.gram_matrix(f) for f in vgg(utils.normalize_batch(photos.clone()))]

    def step():
        opt.zero_grad()
        stylized = utils.normalize_batch(net(photos))  # normalize_batch divides in place
        features_y, features_x = vgg(stylized), vgg(utils.normalize_batch(photos.clone()))
        loss = 1e5 * mse(features_y.relu2_2, features_x.relu2_2)
        pairs = zip(features_y, grams, strict=True)
        loss = loss + 1e10 * sum(mse(utils.gram_matrix(f), g) for f, g in pairs)
        loss.backward()
        opt.step()

    result[f"train_step_batch4_{crop}px_s"] = round(timed(step, repeats), 3)
    return result


def video_fps(ckpt: str | None, frames: int, size: tuple[int, int]) -> dict:
    """A `frames`-frame clip of `size` through `python stylize.py` in a subprocess: wall time,
    and the frames per second with and without the start-up (a one-frame run's wall time)."""
    try:
        import av
        import numpy as np
    except ImportError:
        return {"skipped": "PyAV is not installed (pip install 'gan-stylizer[video]')"}
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        walls = {}
        for count in (1, frames):
            clip = Path(tmp) / f"clip{count}.mp4"
            with av.open(str(clip), "w") as container:
                stream = container.add_stream("libx264", rate=24)
                stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
                for i in range(count):
                    pixels = np.full((size[1], size[0], 3), (i * 7 % 255, 90, 160), np.uint8)
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))
            command = [sys.executable, str(repo / "stylize.py"), f"input={clip}"]
            command += [f"ckpt={ckpt or 'starry_night'}", f"output={Path(tmp) / f'out{count}.mp4'}"]
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True)
            walls[count] = time.perf_counter() - start
            if proc.returncode != 0:
                lines = proc.stderr.strip().splitlines()
                return {"error": lines[-1] if lines else f"stylize.py exited {proc.returncode}"}
    extra = walls[frames] - walls[1]
    return {
        "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "wall_s": round(walls[frames], 2),
        "fps": round(frames / walls[frames], 2),
        # None where start-up noise outweighs the extra frames (a --quick clip)
        "fps_without_startup": round((frames - 1) / extra, 2) if extra > 0 else None,
    }


def peer_ratios(result: dict, crop: int) -> dict:
    """peer seconds / this project's seconds for each figure both have (above 1: faster)."""
    peer, ours = result["peer"], result["generator_inference"]
    ratios = {}
    for key, entry in ours.items():
        if isinstance(entry, dict) and f"{key}_s" in peer:
            ratios[f"one_pass_{key}_default"] = round(peer[f"{key}_s"] / entry["default_s"], 2)
            ratios[f"one_pass_{key}_fp32_eager"] = round(
                peer[f"{key}_s"] / entry["fp32_eager_s"], 2
            )
    step = result.get(f"train_step_batch4_{crop}px", {})
    if "fp32_s" in step:
        peer_step = peer[f"train_step_batch4_{crop}px_s"]
        ratios["train_step_fp32"] = round(peer_step / step["fp32_s"], 2)
        if "default_recipe_fp32_s" in step:
            ratios["train_step_default_recipe_fp32"] = round(
                peer_step / step["default_recipe_fp32_s"], 2
            )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    parser.add_argument("--ckpt", help="a training checkpoint to time (default: random weights)")
    parser.add_argument("--peer", help="a pytorch/examples checkout: time its fast_neural_style")
    args = parser.parse_args()
    peer = load_peer(args.peer) if args.peer else None  # a wrong path fails before any timing
    repeats = 2 if args.quick else 5
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    from gan_stylizer.config.schema import TrainConfig
    from gan_stylizer.devices import cpu_has_native_bf16
    from gan_stylizer.perceptual import build_criterion
    from gan_stylizer.system import StylizerSystem

    result: dict = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_native_bf16": cpu_has_native_bf16(),
        "quick": args.quick,
    }
    n = 1024 if args.quick else 2048
    use_bf16 = device.type == "cuda" or cpu_has_native_bf16()
    # Emulated bf16 (CPUs without AVX512-BF16/AMX) runs at well under 1 GFLOP/s: a 2048² matmul
    # would take about a minute per repeat, so it is measured at 256².
    result["matmul_gflops"] = {
        "fp32": round(matmul_peak(torch.float32, device, n, repeats), 1),
        "bf16": round(matmul_peak(torch.bfloat16, device, n if use_bf16 else 256, repeats), 1),
    }
    peak = result["matmul_gflops"]["bf16" if use_bf16 else "fp32"]

    sizes = (128, 256) if args.quick else (512, 1024)
    generator = load(args.ckpt)
    result["generator_inference"] = compare_paths(generator, sizes, repeats, device, peak)
    if device.type == "cpu":
        height, width = (540, 960) if args.quick else (2160, 3840)
        tile = "256" if args.quick else "auto"
        large = result["large_image"] = large_image(args.ckpt, height, width, tile)
        # Time per pixel against the largest untiled size's default path (the tiles' target).
        size = max(sizes)
        whole = result["generator_inference"][f"{size}x{size}"]["default_s"] / size**2
        tiled = large["seconds"] / (height * width)
        large["us_per_pixel"] = round(tiled * 1e6, 2)
        large[f"per_pixel_vs_{size}"] = round(tiled / whole, 2)
    result["onnx"] = onnx_vs_pytorch(load(args.ckpt), sizes, repeats)

    crop = 64 if args.quick else 256
    batch = torch.rand(4, 3, crop, crop, device=device)
    step = {}
    # Every loss term (R1 and TV on, which the default recipe leaves off), and the default
    # recipe as `train.py` runs it. fp32 always; bf16 autocast only where bf16 is native
    # (emulated, one step takes minutes).
    for recipe, terms in (("", (0.1, 1.0, 1.0)), ("default_recipe_", None)):
        cfg = TrainConfig()
        if terms is not None:
            cfg.loss.adv, cfg.loss.tv, cfg.loss.r1 = terms
        cfg.trainer.warmup_steps = 0  # time the full step: D, then G with its adversarial term
        system = StylizerSystem(cfg, build_criterion(cfg.loss), torch.rand(1, 3, 320, 512))
        system = outside_a_trainer(system.to(device))
        for name, autocast in (("fp32", False), ("bf16_autocast", True)):
            if autocast and not use_bf16:
                continue
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                try:
                    seconds = timed(functools.partial(system.training_step, batch, 0), repeats)
                except (AttributeError, RuntimeError) as err:  # it needs more of a Trainer
                    step[f"{recipe}{name}_error"] = f"{type(err).__name__}: {err}"
                    continue
                step[f"{recipe}{name}_s"] = round(seconds, 3)
    result[f"train_step_batch4_{crop}px"] = step
    if device.type == "cpu":
        video_size = (320, 180) if args.quick else (1280, 720)
        result["video_720p"] = video_fps(args.ckpt, 4 if args.quick else 48, video_size)
    if peer is not None:
        result["peer"] = peer_figures(peer, sizes, crop, repeats, device)
        result["peer_ratios"] = peer_ratios(result, crop)
    print(json.dumps(result, indent=2))


def outside_a_trainer(system):
    """The system with what training_step asks of a Lightning Trainer, for one process."""
    opt_g, opt_d = system.configure_optimizers()
    system.optimizers = lambda: (opt_g, opt_d)
    system.manual_backward = lambda loss, *a: loss.backward(*a)
    system.log = system.log_dict = lambda *a, **k: None
    system.toggled_optimizer = functools.partial(_Toggled, system)
    system.trainer = _NoTrainer()  # training_step asks the trainer to agree on finite losses
    return system


class _NoTrainer:
    """What training_step asks of a Trainer, for one process outside a Trainer."""

    global_step = global_rank = local_rank = 0
    world_size = 1
    should_stop = False

    class strategy:  # noqa: N801 (mirrors Trainer.strategy)
        @staticmethod
        def reduce_boolean_decision(decision, all: bool = True):  # noqa: A002
            return decision


class _Toggled:
    """Lightning's toggled_optimizer: only the given optimizer's parameters take gradients
    inside (D's are frozen for the G step, as in a real run)."""

    def __init__(self, system, optimizer):
        own = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.frozen = [p for p in system.parameters() if p.requires_grad and id(p) not in own]

    def __enter__(self):
        for p in self.frozen:
            p.requires_grad_(False)
        return self

    def __exit__(self, *_):
        for p in self.frozen:
            p.requires_grad_(True)
        return False


if __name__ == "__main__":
    main()
