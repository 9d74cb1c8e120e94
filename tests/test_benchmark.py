"""scripts/benchmark.py --quick runs end to end and prints every figure it promises (its numbers
are not checked: a benchmark, not a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_prints_every_section():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["matmul_gflops"]["fp32"] > 0 and result["matmul_gflops"]["bf16"] > 0
    for size in ("128x128", "256x256"):
        entry = result["generator_inference"][size]
        assert entry["fp32_eager_s"] > 0 and entry["default_s"] > 0
        assert entry["default_mae_255"] <= 1.0
        assert result["onnx"][size]["max_abs_diff"] <= 1e-3
    assert result["large_image"]["peak_rss_mib"] > 0
    # Every machine times the fp32 step (a CPU without native bf16 once timed nothing).
    assert result["train_step_batch4_64px"]["fp32_s"] > 0
