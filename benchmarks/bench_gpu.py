"""The GPU path: ResNet-50 features into the cache, and ResNet-50 fine-tuning.

Both run through qpcore's own code: ``cached_features`` (DataLoader workers
decode the PNGs, the backbone runs in batches) and the trainer (bf16 autocast
and channels_last on CUDA, a DataLoader with workers). Prints images per
second and where the time goes, next to the anchors measured on one H200 with
plain PyTorch 2.11 (fine-tuning 4686 img/s eager, inference 16.1k img/s eager,
end to end with PIL decoding in 15 workers 4553 img/s). Goals: >= 4000 img/s
fine-tuning end to end, >= 12k img/s into the feature cache.

On a machine without CUDA, ``--tiny`` (the default there) runs a few images at
64 px so CI can check the script works; its numbers mean nothing.

Usage: .venv/bin/python benchmarks/bench_gpu.py [--images 4096] [--size 224]
       [--batch 256] [--workers 15] [--tiny]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from qpcore import hookimpl
from qpcore.build import build_backbone
from qpcore.data.jobs import synth_jobs
from qpcore.data.labeler import run_jobs
from qpcore.feature_cache import cached_features
from qpcore.registry import default_registry
from qpcore.trainer import Trainer
from qpcore.validate import resolve_config

ANCHORS = {"fine-tune": 4686.0, "features": 16100.0, "end-to-end": 4553.0}
GOALS = {"fine-tune": 4000.0, "features": 12000.0}


class StepTimes:
    """Sums the trainer's per-batch timings (data, forward, backward, step)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(("data_s", "forward_s", "backward_s", "step_s"), 0.0)
        self.rows = 0

    @hookimpl
    def qp_on_batch_end(self, run: Any, epoch: int, batch: int, metrics: dict[str, float]) -> None:
        for key in self.seconds:
            self.seconds[key] += metrics.get(key, 0.0)
        self.rows += int(metrics.get("rows", 0))


def dataset(folder: Path, images: int) -> Path:
    """``images`` labelled synthetic PNGs (labels are needed by the trainer only)."""
    jobs = synth_jobs(images, "default", 1, 0, 256)
    run_jobs(jobs, folder, {"bench": "gpu"}, progress=False)
    return folder / "manifest.csv"


def features(manifest: Path, size: int, batch: int, workers: int, device: torch.device) -> float:
    registry = default_registry()
    backbone_cfg = {"name": "resnet50", "weights": "none", "input_size": size}
    ref = resolve_config({"model": {"backbone": backbone_cfg}}, registry).model.backbone
    backbone = build_backbone(ref).to(device).eval()
    paths = sorted((manifest.parent / "images").glob("*.png"))
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        cached_features(backbone, paths, Path(cache), batch, workers, device, progress=False)
        seconds = time.perf_counter() - start
    return len(paths) / seconds


def model_only(size: int, batch: int, device: torch.device) -> float:
    """Inference images/s of the bare network on tensors already on the device."""
    import torchvision

    net = torchvision.models.resnet50().to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    cuda = device.type == "cuda"
    if cuda:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    with torch.no_grad(), autocast:
        net(x)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        repeats = 10 if cuda else 2
        for _ in range(repeats):
            net(x)
        if cuda:
            torch.cuda.synchronize()
    return repeats * batch / (time.perf_counter() - start)


def fine_tune(
    manifest: Path, out: Path, size: int, batch: int, workers: int
) -> tuple[float, StepTimes]:
    cfg = {
        "data": {
            "name": "manifest",
            "path": str(manifest),
            "val_fraction": 0.0,
            "test_fraction": 0.0,
        },
        "model": {
            "backbone": {
                "name": "resnet50",
                "weights": "none",
                "freeze": False,
                "input_size": size,
            },
            "head": {"hidden": [256], "dropout": 0.0},
        },
        "loss": "mse",
        "scheduler": None,
        "trainer": {
            "epochs": 2,
            "batch_size": batch,
            "num_workers": workers,
            "checkpoint": {"monitor": "train_loss", "every": 0},
            "early_stopping": {"enabled": False, "monitor": "train_loss"},
        },
        "output": {"dir": str(out), "name": "bench", "report": False},
    }
    registry = default_registry()
    times = StepTimes()
    trainer = Trainer(resolve_config(cfg, registry), registry, out / "bench", [times], quiet=True)
    trainer.fit()
    # Epoch 1 warms up (cuDNN autotuning, worker start): report epoch 2.
    epoch2 = trainer.state.history[-1]["time_s"]
    rows = len(trainer.splits["train"])
    return rows / epoch2, times


def main() -> int:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=15)
    parser.add_argument("--tiny", action="store_true", default=not cuda, help="a smoke run")
    args = parser.parse_args()
    if args.tiny:
        args.images, args.size, args.batch, args.workers = 16, 64, 8, 0
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name() if cuda else "CPU (no CUDA: numbers are a smoke test)"
    print(
        f"device: {name}; {args.images} images at {args.size} px, batch {args.batch}, "
        f"{args.workers} DataLoader workers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        manifest = dataset(Path(tmp) / "data", args.images)
        bare = model_only(args.size, args.batch, device)
        into_cache = features(manifest, args.size, args.batch, args.workers, device)
        tuned, times = fine_tune(manifest, Path(tmp) / "runs", args.size, args.batch, args.workers)
    total = sum(times.seconds.values()) or 1.0
    shares = ", ".join(f"{k[:-2]} {v / total:.0%}" for k, v in times.seconds.items())
    print(f"{'measure':<26} {'img/s':>9} {'anchor (H200)':>14} {'goal':>7}")
    rows = [
        ("inference, bare network", bare, ANCHORS["features"], None),
        ("features into the cache", into_cache, ANCHORS["end-to-end"], GOALS["features"]),
        ("fine-tuning, end to end", tuned, ANCHORS["fine-tune"], GOALS["fine-tune"]),
    ]
    for label, rate, anchor, goal in rows:
        print(f"{label:<26} {rate:>9.1f} {anchor:>14.0f} {goal or '':>7}")
    print(f"fine-tuning time per batch: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
