"""The notebook tests' guard against a lost kernel-reply wake-up (tests/kernel_client.py): a reply that waits on
the socket while the poll sleeps is taken after one slice and reported; a real timeout still raises on time."""
import asyncio
import queue
import time
from types import SimpleNamespace

import pytest

zmq = pytest.importorskip("zmq")
channels = pytest.importorskip("jupyter_client.channels")

import kernel_client  # noqa: E402  (tests/ is on the path: tests/conftest.py imports it too)


@pytest.fixture
def waiting_reply():
    """A PAIR socket with one message queued on it (ZMQ_EVENTS has POLLIN)."""
    ctx = zmq.Context()
    rx, tx = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    rx.bind("inproc://reply")
    tx.connect("inproc://reply")
    tx.send(b"reply")
    time.sleep(0.05)
    assert rx.get(zmq.EVENTS) & zmq.POLLIN
    yield rx
    rx.close(0), tx.close(0), ctx.term()


def _install(monkeypatch, whole, slice_s):
    seen = []
    monkeypatch.setattr(channels.AsyncZMQSocketChannel, "get_msg", whole)  # restored after the test
    monkeypatch.setattr(kernel_client, "MISSED", type(kernel_client.MISSED)())
    kernel_client.poll_in_slices(slice_s, lambda kind, state: seen.append((kind, state)))
    return seen


def test_a_reply_whose_wake_up_was_lost_is_taken_after_one_slice_and_reported(monkeypatch, waiting_reply):
    calls = []

    async def sleeps_through_the_first_wake_up(self, timeout=None):  # as the stalled poll: the reply is there
        calls.append(timeout)
        await asyncio.sleep(timeout)
        if len(calls) == 1:
            raise queue.Empty
        return self.socket._shadow_sock.recv()

    seen = _install(monkeypatch, sleeps_through_the_first_wake_up, 0.05)
    channel = SimpleNamespace(socket=SimpleNamespace(_shadow_sock=waiting_reply))
    t0 = time.monotonic()
    got = asyncio.run(channels.AsyncZMQSocketChannel.get_msg(channel, timeout=300))
    assert got == b"reply" and time.monotonic() - t0 < 5  # not the 300-s cell budget
    assert calls == [0.05, 0.05]
    assert kernel_client.MISSED == {"PAIR": 1} and seen[0][0] == "PAIR"
    assert set(seen[0][1]) >= {"fd", "asyncio_watches"}


def test_a_real_timeout_still_raises_at_its_deadline_and_reports_nothing(monkeypatch):
    async def nothing_arrives(self, timeout=None):
        await asyncio.sleep(timeout)
        raise queue.Empty

    seen = _install(monkeypatch, nothing_arrives, 0.05)
    ctx = zmq.Context()
    idle = ctx.socket(zmq.PAIR)
    channel = SimpleNamespace(socket=SimpleNamespace(_shadow_sock=idle))
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        asyncio.run(channels.AsyncZMQSocketChannel.get_msg(channel, timeout=0.3))
    assert 0.25 < time.monotonic() - t0 < 2.0 and not seen and not kernel_client.MISSED
    idle.close(0), ctx.term()


def test_a_watch_that_asyncio_believes_in_but_epoll_lost_is_told_apart(tmp_path):
    """The second way to lose a wake-up: a reader left on a closed fd whose number a new socket reuses."""
    import os

    async def main():
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        loop.add_reader(r, lambda: None)
        os.close(r), os.close(w)  # closed without remove_reader: epoll drops it, asyncio's map keeps it
        r2, w2 = os.pipe()
        fired = asyncio.Event()
        loop.add_reader(r2, fired.set)
        os.write(w2, b"x")
        try:
            await asyncio.wait_for(fired.wait(), 0.3)
        except asyncio.TimeoutError:
            pass
        state, stale = kernel_client.watch_state(r2), kernel_client.stale_watches(loop)
        loop.remove_reader(r2)
        os.close(r2), os.close(w2)
        return r2 == r, fired.is_set(), state, stale, kernel_client.stale_watches(loop)

    reused, fired, state, stale, after = asyncio.run(main())
    if not reused:
        pytest.skip("the OS gave the new pipe another fd number")
    assert not fired and state["asyncio_watches"] and state.get("epoll_watches") is False
    assert stale == [state["fd"]] and after == []  # what conftest checks after every notebook
