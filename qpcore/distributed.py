"""Training on several processes with torch.distributed, as launched by torchrun.

The trainer keeps one code path; this module holds what differs under DDP:
which process is the main one (rank 0 writes every file), how a global batch
is cut between ranks, and how predictions and decisions are made the same on
every rank. Outside torchrun (or with ``trainer.strategy: single``) every
function here is the identity, so single-process training is unchanged.

Semantics (also in docs/config.md):

* ``trainer.batch_size`` is **per process**; a step sees
  ``batch_size x world_size x accumulate`` rows. Every rank draws the same
  permutation (seeded by seed and epoch), and each global batch is cut into
  contiguous per-rank slices; each rank's loss is weighted by its share of the
  global batch, so DDP's gradient average is the gradient of the global batch
  mean, the same as one process with the global batch.
* BatchNorm is **not** synchronised (SyncBatchNorm needs CUDA): each rank
  normalises with its own slice's statistics, and the running statistics
  saved are rank 0's (DDP broadcasts buffers from rank 0).
* Validation and test predictions are sharded by contiguous ranges and
  gathered in row order, with no padding and no duplicates, so metrics equal
  the single-process ones on the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from qpcore.errors import QPError

#: Seconds a collective waits for a missing rank before the job fails.
TIMEOUT_ENV = "QP_DDP_TIMEOUT"
DEFAULT_TIMEOUT_S = 120


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass
class Distributed:
    """Where this process stands in the job; ``world == 1`` outside DDP."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, strategy: str, device: str) -> Distributed:
        """Join the process group torchrun set up (``ddp``/``auto``), or stay single."""
        launched = launched_by_torchrun()
        if strategy == "single" or (strategy == "auto" and not launched):
            return cls()
        if not launched:
            raise QPError(
                "trainer.strategy is ddp, but this process was not started by torchrun; "
                "run: torchrun --nproc_per_node N -m qpcore train CONFIG"
            )
        if not dist.is_initialized():
            cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
            backend = "nccl" if cuda else "gloo"
            seconds = int(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
            dist.init_process_group(backend, timeout=timedelta(seconds=seconds))
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.enabled and device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shard(self, rows: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's contiguous slice of one global batch, and its loss weight.

        The weight (``world x slice / batch``) makes DDP's mean of the ranks'
        gradients equal the gradient of the whole batch's mean loss.
        """
        if not self.enabled:
            return rows, 1.0
        bounds = [len(rows) * r // self.world for r in range(self.world + 1)]
        mine = rows[bounds[self.rank] : bounds[self.rank + 1]]
        return mine, self.world * len(mine) / max(len(rows), 1)

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """Every rank's ``values`` concatenated in rank order (on every rank)."""
        if not self.enabled:
            return values
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, values.cpu())
        return torch.cat(parts)

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a monitor's request, a stop decision)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the group once every rank is done (a rank tearing down its
        group while another still talks to it aborts in gloo's threads)."""
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


__all__ = ["Distributed", "launched_by_torchrun"]
