"""Vectorized ranking loss against the seed's double loop: speed and agreement.

Times forward + backward of ``qp_losses``'s ``ranking`` loss and of the seed's
literal Python double loop (``qp_losses.reference.seed_ranking_loss``) on the
same float32 batches, and reports the largest differences in value and in the
gradient w.r.t. the predictions.

Run: ``.venv/bin/python benchmarks/bench_ranking_loss.py [--batches 16 64 256]``
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

#: Speed-up the vectorized loss must reach, by batch size (the acceptance targets).
TARGET_SPEEDUP = {64: 500.0, 256: 1000.0}
#: Largest acceptable difference in value and gradient.
TARGET_DIFF = 1e-6

LossFn = Callable[[Tensor, Tensor], Tensor]


def _import_losses() -> tuple[Any, Any]:
    """Import qp_losses, also from a checkout where ``pip install -e .`` has not run."""
    try:
        importlib.import_module("qp_losses")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[1]
        sys.path[:0] = [str(root), str(root / "plugins")]
    batchwise = importlib.import_module("qp_losses.batchwise")
    reference = importlib.import_module("qp_losses.reference")
    return batchwise, reference


def _batch(n: int, seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = 0.5 + 0.5 * torch.rand(n, generator=gen)
    pred = target + 0.1 * torch.randn(n, generator=gen)
    return pred.to(device), target.to(device)


def _step(fn: LossFn, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """One forward + backward; returns the value and the gradient w.r.t. pred."""
    leaf = pred.detach().requires_grad_(True)
    value = fn(leaf, target)
    value.backward()
    assert leaf.grad is not None
    return value.detach(), leaf.grad


def _seconds_per_call(
    fn: LossFn, pred: Tensor, target: Tensor, budget_s: float, max_rounds: int
) -> float:
    """Seconds per call: the best round of up to ``max_rounds`` within ``budget_s``.

    The best round, as ``timeit`` recommends: other load on the machine only
    ever adds time, so the minimum is the least disturbed estimate.
    """
    sync = torch.cuda.synchronize if pred.is_cuda else (lambda: None)
    _step(fn, pred, target)  # warm-up: allocator, lazy init
    sync()
    start = time.perf_counter()
    _step(fn, pred, target)
    sync()
    once = max(time.perf_counter() - start, 1e-7)
    rounds = max(2, min(max_rounds, int(budget_s / once)))
    per_round = max(1, int(budget_s / rounds / once))
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            _step(fn, pred, target)
        sync()
        best = min(best, (time.perf_counter() - start) / per_round)
    return best


def _format_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--loop-budget", type=float, default=6.0, help="seconds spent timing the loop per batch"
    )
    args = parser.parse_args(argv)

    batchwise, reference = _import_losses()
    margin = args.margin
    vectorized = batchwise.RankingLoss(batchwise.RankingParams(margin=margin))

    def seed_loop(pred: Tensor, target: Tensor) -> Tensor:
        return reference.seed_ranking_loss(pred, target, margin)

    device = torch.device(args.device)
    print(
        f"ranking loss, forward + backward, float32, margin {margin}, device {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    header = (
        f"{'batch':>5}  {'pairs':>6}  {'seed loop':>10}  {'vectorized':>10}  "
        f"{'speed-up':>9}  {'max |Δ value|':>13}  {'max |Δ grad|':>12}  target"
    )
    print(header)
    print("-" * len(header))
    all_met = True
    for n in args.batches:
        pred, target = _batch(n, args.seed + n, device)
        value, grad = _step(vectorized, pred, target)
        ref_value, ref_grad = _step(seed_loop, pred, target)
        d_value = (value - ref_value).abs().item()
        d_grad = (grad - ref_grad).abs().max().item()

        t_loop = _seconds_per_call(seed_loop, pred, target, args.loop_budget, max_rounds=5)
        t_vec = _seconds_per_call(vectorized, pred, target, 1.0, max_rounds=20)
        speedup = t_loop / t_vec
        met = d_value <= TARGET_DIFF and d_grad <= TARGET_DIFF
        wanted = TARGET_SPEEDUP.get(n)
        if wanted is not None:
            met = met and speedup >= wanted
        all_met &= met
        goal = f">= {wanted:.0f}x" if wanted else "Δ only"
        print(
            f"{n:>5}  {n * (n - 1) // 2:>6}  {_format_time(t_loop):>10}  "
            f"{_format_time(t_vec):>10}  {speedup:>8.0f}x  {d_value:>13.1e}  {d_grad:>12.1e}  "
            f"{goal} {'met' if met else 'MISSED'}"
        )
    print(f"\nall targets met: {'yes' if all_met else 'no'}")
    return 0 if all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
