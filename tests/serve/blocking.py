"""A test-only op that blocks until the test lets it go, so deadline, race and saturation tests control the slow side.

``block`` (registered as the op ``test_block`` by the ``gate`` fixture, only in tests) writes a file
named after its process id into the gate folder, then waits until the file ``release`` appears there.
A test knows when the work has started (and in which process) and decides when, if ever, it ends:
nothing depends on how fast the machine is.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

# the op runs in the service's worker processes, which cannot import this module by name: send it by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

OP = "test_block"


def block(image, *, gate: str = ""):
    """Test-only: announce this process in ``gate``, then wait for ``gate/release`` (forever if it never comes)."""
    folder = Path(gate)
    (folder / f"started-{os.getpid()}").write_text(str(os.getpid()))
    while not (folder / "release").exists():
        time.sleep(0.005)
    return image


class Gate:
    """The folder the blocking op reports to and waits on."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> str:
        """The op's URL with this gate as its option."""
        return f"/v1/ops/{OP}?gate={self.folder}"

    def started(self) -> list[int]:
        """Process ids of the calls that have started."""
        return sorted(int(p.name.split("-", 1)[1]) for p in self.folder.glob("started-*"))

    def wait_started(self, n: int = 1, *, safety_s: float = 120) -> list[int]:
        """Wait until ``n`` calls have started (an event the test waits for; ``safety_s`` only ends a broken test)."""
        end = time.monotonic() + safety_s
        while len(self.started()) < n:
            assert time.monotonic() < end, f"{n} blocking call(s) did not start within {safety_s} s"
            time.sleep(0.005)
        return self.started()

    def release(self) -> None:
        (self.folder / "release").touch()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a reaped process does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """Registers the ``test_block`` op for the test (and removes it after); yields its :class:`Gate`."""
    from pixlearn.ops import _registry, register_op

    register_op(OP, category="test")(block)
    g = Gate(tmp_path / "gate")
    try:
        yield g
    finally:
        g.release()
        _registry._OPS.pop(OP, None)
