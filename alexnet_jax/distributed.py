"""Many processes, one training run: JAX's multi-controller runtime (`jax.distributed`).

Every process (one per host, or per GPU group) runs the same command. JAX
connects them through a coordinator (process 0's address), after which
`jax.devices()` lists every device of every process and a jitted step runs
as one program over all of them. This module starts that runtime, describes
the topology, and keeps the processes in agreement where they act
separately: when one process cannot go on (a locked workdir, a missing
dataset, a damaged checkpoint it alone sees), every process raises, instead
of the others waiting forever inside the next collective.

With one process, everything here is a no-op or a plain call.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, TypeVar

import jax
import numpy as np

from alexnet_jax.errors import ConfigError, UserError

T = TypeVar("T")

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_MESSAGE_BYTES = 1024


class PeerError(UserError, RuntimeError):
    """Another process of the run failed; the message names it and quotes its error."""


def initialize(
    coordinator_address: str = "",
    num_processes: int = 0,
    process_id: int = -1,
    initialization_timeout: int = 300,
) -> None:
    """Joins this process to the run: `jax.distributed.initialize`, before any other JAX call.

    With no arguments JAX detects the cluster itself (Cloud TPU VMs, SLURM,
    Open MPI, Kubernetes). Otherwise give all three: the coordinator's
    `host:port` (process 0's machine), the number of processes and this
    process's id. A loopback coordinator listens on loopback only.
    """
    given = {"num_processes": num_processes > 0, "process_id": process_id >= 0}
    if not coordinator_address and any(given.values()):
        raise ConfigError(
            "--num_processes and --process_id need --coordinator_address=HOST:PORT (process 0's host and a free "
            "port); or give none of them to let JAX detect the cluster (TPU VM, SLURM, Open MPI)."
        )
    kwargs = {}
    if coordinator_address:
        host, _, port = coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"--coordinator_address must be HOST:PORT, e.g. 10.0.0.2:1234; got {coordinator_address!r}."
            )
        kwargs["coordinator_address"] = coordinator_address
        if host in _LOOPBACK_HOSTS:
            kwargs["coordinator_bind_address"] = coordinator_address
        if given["num_processes"]:
            kwargs["num_processes"] = num_processes
        if given["process_id"]:
            kwargs["process_id"] = process_id
        if given["num_processes"] and given["process_id"] and not 0 <= process_id < num_processes:
            raise ConfigError(f"--process_id must be in [0, {num_processes}); got {process_id}.")
    try:
        jax.distributed.initialize(initialization_timeout=initialization_timeout, **kwargs)
    except ValueError as error:
        raise ConfigError(
            f"Could not start the multi-process runtime ({error}). Outside a cluster JAX detects (TPU VM, SLURM, "
            "Open MPI), pass --coordinator_address=HOST:PORT --num_processes=N --process_id=I to every process."
        ) from None


def describe_processes() -> str:
    """One line: which process this is, on which host, with which devices."""
    local = jax.local_devices()
    return (
        f"process {jax.process_index()} of {jax.process_count()} on {socket.gethostname()}: "
        f"{len(local)} local {local[0].platform} device(s) (ids {', '.join(str(d.id) for d in local)}), "
        f"{jax.device_count()} in all"
    )


def process_hosts() -> list[str]:
    """The host name of every process, by process index (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return [socket.gethostname()]
    return [_decode(row) for row in _gather(_encode(socket.gethostname()))]


def describe_mesh(mesh, hosts: list[str]) -> str:
    """The mesh as rows of process:device, one row per 'data' index (its towers left to right), and the hosts."""
    rows = []
    for index, row in enumerate(np.asarray(mesh.devices)):
        cells = "  ".join(f"p{d.process_index}:{d.id}" for d in np.ravel(row))
        rows.append(f"  data {index}: {cells}")
    where = ", ".join(f"p{index} on {host}" for index, host in enumerate(hosts))
    return (
        f"mesh {dict(mesh.shape)} (process:device; model index left to right):\n"
        + "\n".join(rows)
        + f"\n  {where}"
    )


def towers_share_host(mesh, hosts: list[str]) -> bool:
    """Whether every data shard's 'model' devices (its towers) are on one host, so their exchanges stay local."""
    return all(
        len({hosts[d.process_index] for d in np.ravel(row)}) == 1
        for row in np.asarray(mesh.devices)
    )


def _encode(text: str, flag: bool = False) -> np.ndarray:
    """A fixed-size row for gathering: a flag byte, then the text (cut to fit)."""
    data = text.encode()[: _MESSAGE_BYTES - 1]
    row = np.zeros(_MESSAGE_BYTES, np.uint8)
    row[0] = flag
    row[1 : 1 + len(data)] = np.frombuffer(data, np.uint8)
    return row


def _decode(row: np.ndarray) -> str:
    return bytes(row[1:]).rstrip(b"\0").decode(errors="replace")


def _gather(row: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(row))


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on any (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.any(_gather(np.array([flag], np.int32))))


def agree(error: BaseException | None) -> None:
    """Every process calls this after a step that may fail on some of them; if any failed, all raise.

    The failing process raises its own error; the others raise PeerError
    quoting it, so each process's log says what went wrong.
    """
    if jax.process_count() == 1:
        if error is not None:
            raise error
        return
    row = _encode(
        "" if error is None else f"{type(error).__name__}: {error}", flag=error is not None
    )
    gathered = _gather(row)
    if error is not None:
        raise error
    for index, other in enumerate(gathered):
        if other[0]:
            raise PeerError(f"Process {index} of the run stopped: {_decode(other)}")


def _attempt(fn: Callable[[], T]) -> tuple[T | None, Exception | None]:
    try:
        return fn(), None
    except Exception as error:  # handed to agree(), which re-raises it
        return None, error


def everywhere(fn: Callable[[], T]) -> T:
    """`fn()` on every process; raises on all of them if it failed on any."""
    result, error = _attempt(fn)
    agree(error)
    return result


def on_process_zero(fn: Callable[[], T]) -> T | None:
    """`fn()` on process 0 only (None elsewhere); raises on all processes if it failed there."""
    result, error = _attempt(fn) if jax.process_index() == 0 else (None, None)
    agree(error)
    return result


def process_zero_first(fn: Callable[[], T]) -> T:
    """`fn()` on process 0, then on the others: one process prepares what all of them then read (a dataset)."""
    if jax.process_count() == 1:
        return fn()
    result = on_process_zero(fn)
    if jax.process_index() == 0:
        everywhere(lambda: None)  # while the others do it
        return result
    return everywhere(fn)


def check_shared_directory(path: str) -> None:
    """Raises on every process unless they all see `path` as one directory (checkpoints and the lock need that)."""
    if jax.process_count() == 1:
        return
    # process 0's
    token = _decode(_gather(_encode(f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"))[0])
    marker = os.path.join(path, ".shared_directory_check")

    def write():
        with open(marker, "w") as file:
            file.write(token)

    def check():
        seen = open(marker).read() if os.path.exists(marker) else "nothing"
        if seen != token:
            raise ConfigError(
                f"{path} is not the same directory for every process: process {jax.process_index()} on "
                f"{socket.gethostname()} does not see the file process 0 wrote there. Use a directory on a "
                "filesystem all hosts share (NFS, Filestore, Lustre, ...), mounted at the same path everywhere."
            )

    on_process_zero(write)
    everywhere(check)
    on_process_zero(lambda: os.remove(marker))


def barrier(name: str) -> None:
    """Waits until every process gets here (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
