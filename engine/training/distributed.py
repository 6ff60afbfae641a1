"""Training across processes with PyTorch DDP, launched by torchrun (`kirec run --nproc N` or torchrun itself).

What the ranks share, and why the result is the one-process run's:
- `train.batch_size` is the GLOBAL batch. Every rank draws each epoch's batches exactly as one process would (same
  seed, same order, same [MASK]s) and trains on rows rank, rank + W, ... of each; its loss is weighted by its share
  of the batch's targets, so DDP's mean of the ranks' gradients is the one-process batch gradient (up to the order
  of float sums). Dropout masks and sampled negatives are drawn per rank, so with those on the runs differ.
- Rank 0 validates and decides (time budget); every rank gets its result, so all stop at the same epoch.
- Rank 0 is the one writer: it alone opens the database (the run's row, metrics, events, artifacts) and writes
  the run's files (best checkpoint, training state, test ranks). The others get the file names from it and load
  the same best checkpoint once it is written.
- Resuming (`kirec run --resume ID --nproc N`): the ranks join on the stored train.device, rank 0 reads the stored
  config and resume point and hands them on, and every rank loads the one training state rank 0 saved. Its
  generator states are rank 0's: the batches and [MASK]s (drawn alike on every rank) continue exactly; rank
  0's dropout and negatives streams are given to every rank, so with dropout or sampled negatives on, the
  resumed run is not bit-for-bit the uninterrupted one (with them off, it is, up to float rounding).
- gloo on the CPU, NCCL on CUDA with one GPU per rank (cuda:LOCAL_RANK). The NCCL path is written to the
  documented API but has not run on a GPU here.

A world size of 1 (no torchrun) makes every method a no-op, so the single-process path is unchanged.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Mapping, TypeVar

import torch
from torch import nn

from engine.config import ConfigError
from engine.models.base import SequentialBackbone
from engine.models.losses import sequence_loss

T = TypeVar("T")

# A rank waiting for rank 0 (filling the caches, validating, writing the checkpoint) may wait long; torchrun
# tears the group down at once when any rank dies, so this only bounds a real hang.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class TrainingStep(nn.Module):
    """A backbone's forward and its training loss as one module. Under DDP every use of the parameters, the
    loss's use of the tied item table included, then happens inside the wrapped forward."""

    def __init__(self, model: SequentialBackbone, loss: str, num_negatives: int, generator: torch.Generator | None):
        super().__init__()
        self.model, self.loss, self.num_negatives, self.generator = model, loss, num_negatives, generator
        self.extra_loss = model.extra_loss_term()  # a method's extra term (engine.models.base.ExtraLoss), or None

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        hidden = self.model(inputs)
        loss = sequence_loss(self.loss, hidden, targets, self.model, self.num_negatives, self.generator)
        if self.extra_loss is not None:
            loss = loss + self.extra_loss(inputs, targets, hidden)
        return loss if weight == 1.0 else loss * weight


class ReplicaStore:
    """The store of a rank other than 0: no database file is opened and nothing is written. Only the calls the
    pipeline makes on every rank exist here (the run row, and StoreRecorder's writes of the event stream); what
    only rank 0 does (reading or reopening a run to resume, recording artifacts, the test ranks) is missing on
    purpose, so a
    new store call on every rank fails loudly on rank 1 instead of silently writing twice."""

    def create_run(self, **_fields: Any) -> None:
        return None  # the real id comes from rank 0 (DistributedContext.from_main)

    def log_metrics(self, *_args: Any, **_kwargs: Any) -> None: ...

    def set_tags(self, *_args: Any, **_kwargs: Any) -> None: ...

    def finish_run(self, *_args: Any, **_kwargs: Any) -> None: ...

    def close(self) -> None: ...


def check_launch(device: torch.device, processes: int, batch_size: int) -> None:
    """What would make `processes` ranks fail, found before any starts: a GPU each, a row of the batch each."""
    if device.type == "cuda" and processes > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {processes}: each process needs a GPU of its own, but only "
            f"{torch.cuda.device_count()} CUDA device(s) exist (or set train.device=cpu)"
        )
    if batch_size < processes:
        raise ConfigError(
            f"train.batch_size: the global batch ({batch_size}) is smaller than the {processes} processes"
        )


def _int_variable(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}: expected an integer, got {raw!r}") from None


@dataclass
class DistributedContext:
    """This process's place among torchrun's ranks. Build it with `from_env` from torchrun's variables."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    device: torch.device | None = None  # set by join()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "DistributedContext":
        """From RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun sets them); the CLI passes
        os.environ in. Without WORLD_SIZE, or with 1, the single-process context."""
        world = _int_variable(env, "WORLD_SIZE", 1)
        if world <= 1:
            return cls()
        rank = _int_variable(env, "RANK", -1)
        if not 0 <= rank < world:
            raise ConfigError(
                f"environment variable RANK: expected 0..{world - 1} for WORLD_SIZE={world}, got {env.get('RANK')!r}"
            )
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not env.get(name):
                raise ConfigError(f"environment variable {name}: torchrun sets it; missing with WORLD_SIZE={world}")
        return cls(
            rank=rank,
            world_size=world,
            local_rank=_int_variable(env, "LOCAL_RANK", rank),
            master_addr=env["MASTER_ADDR"],
            master_port=_int_variable(env, "MASTER_PORT", 29500),
        )

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world size): which rows of each global batch are this rank's."""
        return self.rank, self.world_size

    def place(self, device: torch.device) -> torch.device:
        """This rank's device: on CUDA one GPU per rank, cuda:LOCAL_RANK (an explicit cuda:N is overridden)."""
        if not self.enabled or device.type != "cuda":
            return device
        if self.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device: local rank {self.local_rank} needs a GPU of its own, but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device("cuda", self.local_rank)

    def join(self, device: torch.device) -> torch.device:
        """Initialise the process group (gloo on the CPU, NCCL on CUDA) and return this rank's device."""
        device = self.place(device)
        self.device = device
        if not self.enabled or torch.distributed.is_initialized():
            return device
        if not torch.distributed.is_available():
            raise ConfigError("this torch build has no torch.distributed; run with one process")
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        # tcp:// with explicit rank and world size: torch reads no environment for us. Under torchrun this
        # connects to the agent's store; launched by hand, rank 0 hosts it.
        torch.distributed.init_process_group(
            backend="nccl" if cuda else "gloo",
            init_method=f"tcp://{self.master_addr}:{self.master_port}",
            rank=self.rank,
            world_size=self.world_size,
            timeout=COLLECTIVE_TIMEOUT,
            device_id=device if cuda else None,
        )
        return device

    def leave(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP around `module` (the TrainingStep): gradients are averaged over the ranks during backward.

        find_unused_parameters=False: every trainable parameter is used in every step (the loss sits inside the
        wrapped forward, and a rank without rows of its own trains on a zero-weight row), so DDP need not walk
        the graph. broadcast_buffers=False: no buffer changes in training (no batch norm; frozen semantic
        tables are identical on every rank), so re-sending them each step is waste.
        """
        if not self.enabled:
            return module
        cuda = self.device is not None and self.device.type == "cuda"
        ddp = nn.parallel.DistributedDataParallel
        # Newer torch renamed broadcast_buffers (and warns on it); both still sync buffers once at construction.
        no_buffer_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
            else {"broadcast_buffers": False}
        )
        return ddp(
            module, device_ids=[self.device.index] if cuda else None, find_unused_parameters=False, **no_buffer_sync
        )

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (filling the data and knowledge caches), the others after it (reading them)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def from_main(self, value: T) -> T:
        """Rank 0's `value` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        box = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, compute: Callable[[], T]) -> T:
        """Run `compute` on rank 0 only and return its result on every rank."""
        if not self.enabled:
            return compute()
        return self.from_main(compute() if self.is_main else None)

    def average(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of `tensor` over the ranks (a copy; the input is left alone)."""
        if not self.enabled:
            return tensor
        total = tensor.detach().clone()
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total / self.world_size

    def agreed(self, should_stop: Callable[[], bool] | None) -> Callable[[], bool] | None:
        """A stop check every rank answers alike: true when any rank was asked to stop (each has its own Ctrl-C),
        so all leave the same step. One tiny all-reduce per call."""
        if not self.enabled:
            return should_stop

        def any_rank_stops() -> bool:
            flag = torch.tensor([1.0 if should_stop is not None and should_stop() else 0.0], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            return bool(flag.item())

        return any_rank_stops
