"""Several processes, one run: who am I, where do we meet, which image indices are mine.

``harness run`` started by ``accelerate launch`` (or ``harness run --num-processes K``, which calls it) runs
once per process. :func:`current` reads the launcher's environment: with ``WORLD_SIZE`` unset or 1 it
returns a single-process :class:`Dist` whose barrier and broadcast do nothing (accelerate and
``torch.distributed`` are never imported); otherwise it initialises ``accelerate.PartialState`` (gloo on
CPU, NCCL on GPUs) once.

Work is split by image index with :func:`shard`: contiguous, balanced blocks of a sorted index list, so
each process can call ``Generator.sample(hi, start=lo)`` on its own runs of indices. Because image ``i``
depends only on (seed, i), the union of the shards is the same image set whatever the number of processes.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world`` (``local_rank`` on its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        """Wait until every process reaches this point (no-op with one process)."""
        if self.distributed:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (a small picklable object)."""
        if not self.distributed:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value if self.is_main else None]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def device(self, device: str) -> str:
        """The device this process uses: ``auto``/``cuda`` → ``cuda:<local rank>`` when several processes share GPUs."""
        if not self.distributed:
            return device
        from harness.features.base import resolve_device

        return f"cuda:{self.local_rank}" if resolve_device(device) == "cuda" else device

    def label(self) -> str:
        """`` (rank r of k)`` for progress text, empty with one process."""
        return f" (rank {self.rank} of {self.world})" if self.distributed else ""


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as set by ``accelerate launch`` / ``torchrun`` (1 when unset)."""
    value = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        return int(value)
    except ValueError:
        return 1


_CURRENT: Dist | None = None


def current(device: str = "auto") -> Dist:
    """The :class:`Dist` of this process; initialises the process group on first call when ``WORLD_SIZE`` > 1.

    ``device`` decides the backend: ``cpu`` (or no GPU visible) → gloo, else the accelerator's (NCCL).
    """
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    if world_size_from_env() <= 1:
        return Dist()
    import torch
    from accelerate import PartialState

    cpu = device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    _CURRENT = Dist(rank=state.process_index, world=state.num_processes, local_rank=state.local_process_index,
                    backend=state.backend)
    log.info("process %d of %d (backend %s)", _CURRENT.rank, _CURRENT.world, _CURRENT.backend)
    return _CURRENT


def shard(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """Rank ``rank``'s part of ``indices``: the ``rank``-th of ``world`` contiguous, balanced blocks.

    Block sizes differ by at most one; earlier ranks get the larger blocks (``numpy.array_split``'s rule).
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    q, r = divmod(len(indices), world)
    lo = rank * q + min(rank, r)
    hi = lo + q + (1 if rank < r else 0)
    return list(indices[lo:hi])


def runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers in sorted ``indices`` as half-open ``(lo, hi)`` ranges."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def free_port() -> int:
    """A free TCP port on localhost (for the rendezvous of a one-machine launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(argv: Sequence[str], num_processes: int, *, port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command that runs ``python -m harness.cli *argv`` in ``num_processes`` processes.

    One machine, no accelerate config file and no prompts. ``--multi_gpu`` selects accelerate's torchrun
    launcher, which also serves CPU-only machines (``accelerate launch --cpu`` starts a single process
    unless MPI is set up): :func:`current` then picks gloo. A worker that fails stops the others.
    """
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port or free_port()), "-m", "harness.cli", *argv]


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE`` (to re-run the same command under the launcher)."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out
