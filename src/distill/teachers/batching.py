"""`distill serve`'s batching: concurrent requests collected for a few milliseconds and run as forward passes of
bounded size, one at a time, on one daemon thread (one model, one set of CPU cores)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from typing import Any, Callable, Hashable


class Worker:
    """Runs calls one at a time on its own daemon thread and hands each result back to the event loop. Not
    asyncio.to_thread: its threads are joined at exit, so a forward pass in flight kept a stopped server alive."""

    def __init__(self, name: str):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            fn, args, fut, loop = job
            if fut.cancelled():  # its request timed out or went away while this job was queued
                continue
            try:
                res, err = fn(*args), None
            except BaseException as e:  # noqa: BLE001 - whatever it is, the waiting request answers it
                res, err = None, e if isinstance(e, Exception) else RuntimeError(repr(e))
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, fut, res, err)

    def call(self, fn: Callable, *args) -> asyncio.Future:
        fut = (loop := asyncio.get_running_loop()).create_future()
        self.jobs.put((fn, args, fut, loop))
        return fut

    def stop(self) -> None:
        self.jobs.put(None)  # after the job at hand, which nobody can interrupt


def _settle(fut: asyncio.Future, res: Any, err: BaseException | None = None) -> None:
    if not fut.done():  # the client may have gone away
        fut.set_exception(err) if err is not None else fut.set_result(res)


class Batcher:
    """Collects requests for `window_s`, groups those that can share a forward pass (same kind and decoding)
    and runs the groups one at a time on the model thread (one model, one set of CPU cores).

    `cost(kind, item)` is a request's padded length; a group's size (rows x its longest row) stays within
    `max_group_tokens`, so one maximum-context request does not make 31 short ones wait for a pass 32 times
    its own size. A lone request larger than that still runs, alone."""

    def __init__(
        self,
        run: Callable[[Hashable, list], list],
        window_s: float = 0.005,
        max_batch: int = 32,
        cost: Callable[[Hashable, Any], int] = lambda kind, item: 1,
        max_group_tokens: int = 32768,
    ):
        self.run, self.window_s, self.max_batch = run, window_s, max_batch
        self.cost, self.max_group_tokens = cost, max_group_tokens
        self.queue: asyncio.Queue | None = None
        self.sizes: list[int] = []  # rows per forward group, for tests and logs

    def start(self) -> asyncio.Task:
        self.queue = asyncio.Queue()
        return asyncio.create_task(self.work())

    async def submit(self, kind: Hashable, item: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((kind, item, fut))
        return await fut

    def groups(self, pending: list) -> list[tuple[Hashable, list]]:
        """(kind, [(item, future)]) per forward pass: same kind, shortest first, cut at max_group_tokens."""
        by_kind: dict[Hashable, list] = {}
        for kind, item, fut in pending:
            if not fut.done():  # timed out while queued: its work is skipped
                by_kind.setdefault(kind, []).append((self.cost(kind, item), item, fut))
        out = []
        for kind, entries in by_kind.items():
            group: list = []
            for cost, item, fut in sorted(entries, key=lambda e: e[0]):
                if group and (len(group) + 1) * cost > self.max_group_tokens:
                    out.append((kind, group))
                    group = []
                group.append((item, fut))
            out.append((kind, group))
        return out

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        thread = Worker("distill-serve-model")
        try:
            while True:
                pending = [await self.queue.get()]
                deadline = loop.time() + self.window_s
                while len(pending) < self.max_batch and (left := deadline - loop.time()) > 0:
                    try:
                        pending.append(await asyncio.wait_for(self.queue.get(), left))
                    except asyncio.TimeoutError:
                        break
                for kind, entries in self.groups(pending):
                    if entries := [(item, fut) for item, fut in entries if not fut.done()]:  # some timed out meanwhile
                        self.sizes.append(len(entries))
                        try:
                            results = await thread.call(self.run, kind, [item for item, _ in entries])
                            if len(results) != len(entries):  # a future left unset would hang its request
                                raise RuntimeError(f"{len(results)} results for {len(entries)} requests")
                        except Exception as e:  # noqa: BLE001 - handed to every waiting request; the batcher goes on
                            results = [e] * len(entries)
                        for (_, fut), res in zip(entries, results):
                            _settle(fut, *((None, res) if isinstance(res, Exception) else (res,)))
        finally:
            thread.stop()
