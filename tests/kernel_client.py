"""The notebook tests' guard against lost kernel-reply wake-ups, and its counter (tests/conftest.py installs it;
bench/kernel_wakeups.py measures how often it fires).

nbmake and papermill run nbclient in the test process. nbclient waits for each reply with
`AsyncZMQSocketChannel.get_msg(timeout)` (jupyter_client), which is one `await socket.poll(timeout)` of pyzmq's
asyncio socket: a reader on the socket's ZMQ_FD, which libzmq signals edge-triggered (it is readable while commands
are pending, and any call that processes them, a send, a recv or reading ZMQ_EVENTS, clears it). When that edge is
consumed without the reader callback seeing a readable socket, the reply sits in the socket's queue (ZMQ_EVENTS has
POLLIN) while the poll sleeps to its timeout: the whole cell budget, 300 s.

`poll_in_slices` makes get_msg poll in slices of at most `slice_s` seconds. A new poll reads ZMQ_EVENTS first and
takes a waiting reply at once, so a lost wake-up costs at most one slice; a real timeout still raises at the caller's
deadline. Each slice that ends with a message waiting on the socket is counted (`MISSED`) and reported to `on_missed`:
that is a lost wake-up observed, not inferred.
"""
from __future__ import annotations

import queue
import time
from collections import Counter
from pathlib import Path
from typing import Callable

MISSED: Counter = Counter()  # socket type name (DEALER: shell/control, SUB: iopub) -> lost wake-ups seen


def poll_in_slices(slice_s: float = 1.0, on_missed: Callable[[str, dict], None] | None = None) -> None:
    """Patch jupyter_client's AsyncZMQSocketChannel.get_msg to poll in slices of at most `slice_s` seconds."""
    import zmq
    from jupyter_client.channels import AsyncZMQSocketChannel

    whole = getattr(AsyncZMQSocketChannel.get_msg, "_ltlab_whole", AsyncZMQSocketChannel.get_msg)

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await whole(self, timeout=slice_s if left is None else min(slice_s, left))
            except queue.Empty:
                raw = self.socket._shadow_sock  # the plain socket: reading EVENTS here schedules nothing
                if not raw.closed and raw.get(zmq.EVENTS) & zmq.POLLIN:
                    kind = zmq.SocketType(raw.get(zmq.TYPE)).name
                    MISSED[kind] += 1
                    if on_missed is not None:
                        on_missed(kind, watch_state(raw.get(zmq.FD)))
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    get_msg._ltlab_whole = whole
    AsyncZMQSocketChannel.get_msg = get_msg


def _epoll_watches(selector) -> set[int] | None:
    """The fds in the kernel's epoll interest list behind an asyncio selector (/proc/self/fdinfo of the epoll fd:
    what Linux will wake the loop for); None where that cannot be read (not Linux, not epoll)."""
    try:
        info = Path(f"/proc/self/fdinfo/{selector._selector.fileno()}").read_text()
        return {int(line.split()[1]) for line in info.splitlines() if line.startswith("tfd:")}
    except (AttributeError, OSError, ValueError):
        return None


def watch_state(fd: int) -> dict:
    """Who watches the socket's ZMQ_FD: asyncio's selector map (what the loop believes) and epoll (what wakes it).
    They disagree when a closed socket's fd number was reused by a new one without the loop's reader being
    removed."""
    import asyncio

    sel = getattr(asyncio.get_running_loop(), "_selector", None)
    state = {"fd": fd, "asyncio_watches": sel is not None and fd in sel.get_map()}
    epoll = _epoll_watches(sel)
    if epoll is not None:
        state["epoll_watches"] = fd in epoll
    return state


def stale_watches(loop=None) -> list[int]:
    """fds that an event loop's selector believes it watches but the kernel's epoll does not (closed without
    remove_reader): a trap for the next socket that gets one of those numbers. Default: the loop jupyter_core keeps
    for this thread, which nbclient reuses for every notebook the process runs."""
    if loop is None:
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
    sel = getattr(loop, "_selector", None)
    epoll = _epoll_watches(sel)
    return [] if epoll is None else sorted(fd for fd in sel.get_map() if fd not in epoll)
