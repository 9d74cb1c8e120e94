"""python scripts/benchmark.py [--quick]: speed figures as JSON on stdout (a benchmark, not a test).

- the machine's measured matmul peak, fp32 and bf16 (GFLOP/s);
- generator inference (default model, batch 1) at 512² and 1024²: seconds and achieved GFLOP/s,
  in fp32 and, on a CPU with native bf16 (or CUDA), under bf16 autocast;
- one full training step (batch 4, 256 px crops, D then G with every loss term, caffe VGG19).
Each figure is the median of several runs after a warm-up; the machine is shared and noisy, so
compare figures from one run of this script.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time

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


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    from gan_stylizer.config import TrainConfig
    from gan_stylizer.models.generator import Generator
    from gan_stylizer.system import StylizerSystem
    from gan_stylizer.train import build_criterion

    result: dict = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_native_bf16": cpu_has_bf16(),
    }
    n = 1024 if args.quick else 2048
    result["matmul_gflops"] = {
        "fp32": round(matmul_peak(torch.float32, device, n, repeats), 1),
        "bf16": round(matmul_peak(torch.bfloat16, device, n, repeats), 1),
    }

    torch.manual_seed(0)
    generator = Generator().to(device).eval()
    inference = {}
    use_bf16 = device.type == "cuda" or cpu_has_bf16()
    for size in (512, 1024):
        x = torch.rand(1, 3, size, size, device=device)
        forward = functools.partial(generator, x)
        with torch.no_grad():
            flops = count_flops(forward)
            entry = {"gflop": round(flops / 1e9, 1)}
            s = timed(forward, repeats)
            entry["fp32_s"] = round(s, 4)
            entry["fp32_gflops"] = round(flops / s / 1e9, 1)
            if use_bf16:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    s = timed(forward, repeats)
                entry["bf16_autocast_s"] = round(s, 4)
                entry["bf16_autocast_gflops"] = round(flops / s / 1e9, 1)
        inference[f"{size}x{size}"] = entry
    result["generator_inference"] = inference

    cfg = TrainConfig()
    cfg.loss.adv, cfg.loss.tv, cfg.loss.r1 = 0.1, 1.0, 1.0
    cfg.trainer.warmup_steps = 0  # time the full step: D, then G with every term
    system = StylizerSystem(cfg, build_criterion(cfg.loss), torch.rand(1, 3, 320, 512)).to(device)
    opt_g, opt_d = system.configure_optimizers()
    system.optimizers = lambda: (opt_g, opt_d)  # outside a Trainer
    system.manual_backward = lambda loss, *a: loss.backward(*a)
    system.log = system.log_dict = lambda *a, **k: None
    system.toggled_optimizer = _no_toggle
    batch = torch.rand(4, 3, 256, 256, device=device)
    step = {}
    for name, enabled in (("fp32", False), ("bf16_autocast", use_bf16)):
        if not enabled:
            continue
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name != "fp32"):
            step[f"{name}_s"] = round(timed(lambda: system.training_step(batch, 0), repeats), 3)
    result["train_step_batch4_256px"] = step
    print(json.dumps(result, indent=2))


class _no_toggle:
    def __init__(self, *_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


if __name__ == "__main__":
    main()
