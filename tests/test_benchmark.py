"""scripts/benchmark.py --quick runs end to end and prints every figure it promises (its numbers
are not checked: a benchmark, not a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# A stand-in for pytorch/examples' fast_neural_style modules, with their names and calling
# conventions (pixels 0-255, normalize_batch in place, a namedtuple of four VGG taps).
FAKE_PEER = {
    "transformer_net.py": """
import torch
class TransformerNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    def forward(self, X):
        return self.conv(X)
""",
    "vgg.py": """
from collections import namedtuple
import torch
from torchvision import models
class Vgg16(torch.nn.Module):
    def __init__(self, requires_grad=False):
        super().__init__()
        models.vgg16(weights=models.VGG16_Weights.IMAGENET1K_V1)  # must not download
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    def forward(self, X):
        h = self.conv(X)
        return namedtuple("VggOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])(h, h, h, h)
""",
    "utils.py": """
def gram_matrix(y):
    b, ch, h, w = y.size()
    features = y.view(b, ch, w * h)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)
def normalize_batch(batch):
    batch = batch.div_(255.0)
    return batch - 0.5
""",
}


def test_quick_benchmark_prints_every_section(tmp_path):
    peer = tmp_path / "examples" / "fast_neural_style" / "neural_style"
    peer.mkdir(parents=True)
    for name, text in FAKE_PEER.items():
        (peer / name).write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "--quick",
            "--peer",
            str(tmp_path / "examples"),
        ],
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
    assert result["peer"]["128x128_s"] > 0 and result["peer"]["train_step_batch4_64px_s"] > 0
    ratios = result["peer_ratios"]
    expected = {"one_pass_128x128_default", "one_pass_256x256_default", "train_step_fp32"}
    assert expected <= set(ratios)
    assert "error" not in result["video_720p"], result["video_720p"]
    if "skipped" not in result["video_720p"]:
        assert result["video_720p"]["frames"] == 4 and result["video_720p"]["fps"] > 0


def test_a_wrong_peer_path_fails_before_any_timing(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--peer", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "transformer_net.py" in proc.stderr
    assert proc.stdout == ""
