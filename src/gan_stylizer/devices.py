"""Devices and precision: which device runs (device=auto), and which dtype is fast on it
(bf16 only where the CPU or GPU computes it natively; elsewhere it is emulated and slower).
"""

from __future__ import annotations

import torch

from gan_stylizer.errors import ConfigError


def resolve_train_precision(t) -> str:
    """trainer.precision=auto -> bf16-mixed where bf16 is native, else 32.

    On a CPU without AVX512-BF16 or AMX, PyTorch emulates bf16 and a training step under
    bf16 autocast is many times slower than in fp32 (measured on an AVX2-only AMD EPYC:
    fp32 2.7 s/step, bf16-mixed over 100 s/step); on GPUs without bf16, fp32 (16-mixed is
    refused, see validate_train).
    """
    if str(t.precision) != "auto":
        return str(t.precision)
    accelerator = str(t.accelerator)
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if cpu_has_native_bf16() else "32"
    return "32"  # mps and others


PRECISIONS = ("auto", "32", "bf16", "fp16")


DTYPES = {"32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 beats fp32.

    Elsewhere PyTorch emulates bf16 on the CPU, which is slower than fp32. Read from the
    kernel's CPU flags (Linux); False where they cannot be read.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """precision=auto|32|bf16|fp16 -> the dtype the generator runs in on `device`.

    auto: bf16 on a CPU with native bf16, fp32 on other CPUs and on MPS; on CUDA bf16 where the
    GPU supports it, else fp16.
    """
    if precision != "auto":
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        return DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def pick_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps but MPS is not available; use device=auto")
    return torch.device(name)
