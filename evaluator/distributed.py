"""The process group an evaluation runs in, and agreement between ranks on failures.

Every function here runs its collectives on the default process group of
`torch.distributed`, and each rank must call it the same number of times in
the same order. Without an initialised process group the functions act as
world size 1 and run no collectives.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from binconv.errors import BinconvError

__all__ = [
    "DistributedEvaluationError",
    "WorldInfo",
    "agree_on_failure",
    "all_gather_tensor",
    "current_world",
]

# Backends that move only accelerator tensors, and the device type they
# need. Every other backend (gloo, mpi, ucc, and "cpu:gloo,cuda:nccl"
# pairs that include a CPU backend) moves CPU tensors.
_ACCELERATOR_ONLY_BACKENDS = {"nccl": "cuda", "xccl": "xpu", "hccl": "npu"}

# Maximum length, in UTF-8 bytes, of the error message that a failing rank sends.
MAX_MESSAGE_BYTES = 4096


class DistributedEvaluationError(BinconvError):
    """An evaluation that failed on one or more ranks, raised on every rank.

    Attributes:
        failed_ranks: Ranks whose local work raised, in increasing order.
        message: The error message of the lowest failing rank.
    """

    def __init__(self, failed_ranks: Sequence[int], world_size: int, message: str) -> None:
        self.failed_ranks = tuple(failed_ranks)
        self.message = message
        ranks = ", ".join(str(rank) for rank in self.failed_ranks)
        plural = "s" if len(self.failed_ranks) > 1 else ""
        super().__init__(
            f"evaluation failed on rank{plural} {ranks} of {world_size}; "
            f"rank {self.failed_ranks[0]} reported: {message}"
        )


@dataclass(frozen=True)
class WorldInfo:
    """This process's place in the process group.

    Attributes:
        rank: Rank of this process, 0 without a process group.
        world_size: Number of ranks, 1 without a process group.
        backend: Name of the process group's backend (`gloo`, `nccl`, ...),
            or None without a process group.
        initialized: Whether `torch.distributed` has a default process group.
    """

    rank: int = 0
    world_size: int = 1
    backend: str | None = None
    initialized: bool = False

    @property
    def device(self) -> torch.device:
        """The device whose tensors the backend moves: CUDA for NCCL, else the CPU.

        For an accelerator backend this is the current device of its kind,
        which training scripts set with `torch.cuda.set_device(local_rank)`.
        NOTE: the tests run gloo on the CPU only, so the NCCL path is untested.
        """
        device_type = _ACCELERATOR_ONLY_BACKENDS.get(self.backend or "")
        if device_type is None:
            return torch.device("cpu")
        device_module = getattr(torch, device_type)
        return torch.device(device_type, device_module.current_device())


def current_world() -> WorldInfo:
    """Return the rank, world size and backend of the default process group, if any."""
    if not (dist.is_available() and dist.is_initialized()):
        return WorldInfo()
    return WorldInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        backend=str(dist.get_backend()),
        initialized=True,
    )


def all_gather_tensor(tensor: torch.Tensor, world: WorldInfo) -> list[torch.Tensor]:
    """Gather `tensor` from every rank, which must all pass the same shape and dtype.

    The tensor is moved to the backend's device for the collective, and the
    returned tensors stay there. Without a process group this returns
    `[tensor]`.
    """
    if not world.initialized:
        return [tensor]
    local = tensor.to(world.device).contiguous()
    gathered = [torch.empty_like(local) for _ in range(world.world_size)]
    dist.all_gather(gathered, local)
    return gathered


def agree_on_failure(error: BaseException | None, world: WorldInfo | None = None) -> None:
    """Raise on every rank if the local work of any rank raised, so that no rank waits forever.

    Each rank calls this after its local work, passing the exception that
    work raised or None. The ranks exchange a failure flag, and the lowest
    failing rank sends its error message to the others, so all ranks raise
    together instead of the healthy ones waiting forever in the next
    collective. On a failing rank the original exception is the `__cause__`
    of the raised one.

    Args:
        error: The exception this rank's local work raised, or None.
        world: The process group, by default `current_world()`.

    Raises:
        DistributedEvaluationError: Some rank passed an error. It names the
            failing ranks and carries the message of the lowest one.
        BaseException: Without a process group, `error` itself.
    """
    world = world or current_world()
    if not world.initialized:
        if error is not None:
            raise error
        return
    message = _encode_message(error)
    status = torch.tensor([int(error is not None), len(message)], dtype=torch.int64)
    statuses = [row.cpu() for row in all_gather_tensor(status, world)]
    failed_ranks = [rank for rank, row in enumerate(statuses) if row[0].item()]
    if not failed_ranks:
        return

    source = failed_ranks[0]
    length = int(statuses[source][1].item())
    if world.rank == source:
        buffer = torch.frombuffer(bytearray(message), dtype=torch.uint8).to(world.device)
    else:
        buffer = torch.empty(length, dtype=torch.uint8, device=world.device)
    dist.broadcast(buffer, src=source)
    text = bytes(buffer.cpu().tolist()).decode("utf-8", errors="replace")
    raise DistributedEvaluationError(failed_ranks, world.world_size, text) from error


def _encode_message(error: BaseException | None) -> bytes:
    if error is None:
        return b""
    # The exception type is part of the message, so it is never empty and
    # "KeyError: 3" stays distinguishable from "3".
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_MESSAGE_BYTES:
        encoded = encoded[: MAX_MESSAGE_BYTES - 3] + b"..."
    return encoded
