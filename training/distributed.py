"""Multi-process training under ``torchrun`` (PyTorch DDP), and nothing when run alone.

Every process draws the *same* global batch from the same generator and keeps its own slice of
it; DDP averages the gradients, so the step equals a single process's step on the whole batch
(exactly, for models without batch statistics: upscalers, and interposers with ``bn=frozen``).
Only rank 0 writes logs, plots and checkpoints; every rank loads a checkpoint to resume, so a
resumed run continues exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, batch: int) -> slice:
        """This rank's slice of a global batch of ``batch`` samples."""
        if batch % self.size:
            from interposer.errors import InterposerError

            raise InterposerError(f"batch={batch} does not split evenly over {self.size} processes.")
        per = batch // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def init(device: torch.device) -> World:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def local_device(choice: str) -> str:
    """Under torchrun on GPUs, each process takes the GPU of its ``LOCAL_RANK``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and choice in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return choice


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def barrier(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()


def finish(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
