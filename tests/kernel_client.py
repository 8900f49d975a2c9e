"""The notebook tests' kernel client: the fix for the lost kernel-reply wake-up behind make test's 300-s stall, and a
guard that catches any lost wake-up left (tests/conftest.py installs both; bench/kernel_wakeups.py measures them).

The cause. nbmake and papermill run nbclient in the test process. nbclient waits for a cell's execute_reply with
jupyter_client's `AsyncZMQSocketChannel.get_msg`: one `await socket.poll(timeout)` of pyzmq's asyncio socket, an
asyncio reader on the socket's ZMQ_FD. libzmq signals that fd edge-triggered: it is readable while commands are
pending, and any call that processes them (a send, a recv, reading ZMQ_EVENTS) clears it. pyzmq's asyncio socket
re-reads ZMQ_EVENTS after its own calls and wakes its waiting futures; a call on a plain `zmq.Socket` that shadows
the same socket does not. jupyter_client's `Session.send` sends on such a shadow. And nbclient sends on the shell
socket while it waits on it: its stand-in for the front end of an ipywidgets Output widget (nbclient's
output_widget.py) sends a comm state update on the shell channel for every output the widget captures, and
ltlab.widgets draws every figure into an Output widget. When the execute_reply lands after the event loop's last
select and before such a send, the send consumes its wake-up: the poll sleeps to its timeout (the cell budget,
300 s), whose re-read then finds the reply. The cell takes its own time plus 300 s and passes
(tests/test_kernel_client.py reproduces it step by step; upstream: jupyter/nbclient#312).

The fix (`wake_after_plain_send`): after `Session.send` on an asyncio socket, read ZMQ_EVENTS through the asyncio
socket, which wakes the futures waiting on it, as pyzmq does after its own calls.

The guard (`poll_in_slices`): get_msg polls in slices of at most `slice_s` seconds (a real timeout still raises at
the caller's deadline), and shortly before a slice's poll times out it looks twice, 20 ms apart: no wake-up pending
(none on ZMQ_FD, none queued in the loop), yet a message queued (ZMQ_EVENTS has POLLIN), is a lost wake-up seen
directly. It is counted (`MISSED`) and reported to `on_missed`, and costs one slice instead of the whole cell
budget.
"""
from __future__ import annotations

import asyncio
import queue
import select
import time
from collections import Counter
from pathlib import Path
from typing import Callable

MISSED: Counter = Counter()  # socket type name (DEALER: shell/control, SUB: iopub) -> lost wake-ups seen
LOOK_BEFORE_S, CONFIRM_S = 0.05, 0.02  # the guard looks this long before a slice's poll times out (when the poll
# re-reads the socket itself), and again this much later


def wake_after_plain_send() -> None:
    """Patch jupyter_client's Session.send and send_raw: after sending on an asyncio socket (through a plain shadow
    of it), read ZMQ_EVENTS through the asyncio socket, so that a reply whose wake-up the send consumed is delivered
    to the poll waiting for it."""
    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    def waking(send):
        plain = getattr(send, "_ltlab_plain", send)

        def send_and_wake(self, stream, *args, **kwargs):
            try:
                return plain(self, stream, *args, **kwargs)
            finally:
                if isinstance(stream, zmq.asyncio.Socket) and not stream.closed:
                    stream.get(zmq.EVENTS)  # pyzmq's asyncio get: schedules the waiting futures if a message is in

        send_and_wake._ltlab_plain = plain
        return send_and_wake

    Session.send = waking(Session.send)
    Session.send_raw = waking(Session.send_raw)


def _stuck(socket, poll) -> int | None:
    """The socket's ZMQ_FD if a message is queued on it while its poll sleeps with no wake-up pending on the fd."""
    import zmq

    raw = socket._shadow_sock
    if poll.done() or raw.closed:
        return None
    fd = raw.get(zmq.FD)  # reading ZMQ_FD processes no commands
    if select.select([fd], [], [], 0)[0]:
        return None  # a wake-up is pending: the loop will deliver it (and reading ZMQ_EVENTS now would consume it)
    return fd if raw.get(zmq.EVENTS) & zmq.POLLIN else None


def _look_for_lost_wakeup(socket, poll, on_missed, confirm: bool = True) -> None:
    """Called shortly before a slice's poll times out. A message queued with no wake-up pending on the fd may still
    be on its way to the poll through callbacks the loop has queued (pyzmq wakes a poll in two steps), so look again
    once they have run: still stuck is a lost wake-up."""
    fd = _stuck(socket, poll)
    if fd is None:
        return
    if confirm:
        asyncio.get_running_loop().call_later(CONFIRM_S, _look_for_lost_wakeup, socket, poll, on_missed, False)
        return
    import zmq

    kind = zmq.SocketType(socket._shadow_sock.get(zmq.TYPE)).name
    MISSED[kind] += 1
    if on_missed is not None:
        on_missed(kind, watch_state(fd))


def poll_in_slices(slice_s: float = 1.0, on_missed: Callable[[str, dict], None] | None = None) -> None:
    """Patch jupyter_client's AsyncZMQSocketChannel.get_msg to poll in slices of at most `slice_s` seconds, looking
    for a lost wake-up at the end of each (its body is jupyter_client's: poll, then receive, or raise Empty)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            wait = slice_s if deadline is None else min(slice_s, max(0.0, deadline - time.monotonic()))
            poll = self.socket.poll(int(wait * 1000))
            look = None
            if wait > LOOK_BEFORE_S:
                look = loop.call_later(wait - LOOK_BEFORE_S, _look_for_lost_wakeup, self.socket, poll, on_missed)
            try:
                ready = await poll
            finally:
                if look is not None:
                    look.cancel()
            if ready:
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty

    get_msg._ltlab_shipped = getattr(AsyncZMQSocketChannel.get_msg, "_ltlab_shipped", AsyncZMQSocketChannel.get_msg)
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
