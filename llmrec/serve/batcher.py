"""Dynamic batching: requests from many HTTP handlers, decoded together on one thread.

Handlers put jobs on a bounded queue (full: `QueueFull`, which the server answers with 503); the
decoder thread takes the first job, then more until `max_batch` users are in hand or `max_wait_ms`
has passed, groups them by what changes the decoding (k, history exclusion, explanations, a
shortlist), and runs each group as one batch. A job's result is what the same call would return
alone: the beam width depends on k and the shortlist, so jobs that differ there never share a call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The pending queue holds `max_queue` jobs already."""


@dataclass
class Job:
    history: list[str]
    key: Hashable  # jobs with equal keys may be decoded in one call
    payload: Any = None  # what the decode function needs besides the history (k, shortlist, ...)
    future: Future = field(default_factory=Future)


class Batcher:
    """`decode(jobs)` returns one result per job (same order); it runs on the decoder thread only."""

    def __init__(
        self,
        decode: Callable[[list[Job]], list[Any]],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.decode, self.max_batch, self.max_wait = decode, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch or (lambda n: None)
        self.pending: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.thread = threading.Thread(target=self._run, name="llmrec-decoder", daemon=True)
        self.running = False

    @property
    def depth(self) -> int:
        return self.pending.qsize()

    def start(self) -> None:
        self.running = True
        self.thread.start()

    def submit(self, job: Job) -> Future:
        if not self.running:
            raise QueueFull("the server is shutting down")
        try:
            self.pending.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.pending.maxsize} requests are waiting already") from None
        return job.future

    def stop(self) -> None:
        """Decode what is queued, then end the thread."""
        self.running = False
        self.pending.put(None)
        self.thread.join()

    def _collect(self) -> tuple[list[Job], bool]:
        first = self.pending.get()
        if first is None:
            return [], True
        jobs, deadline = [first], time.monotonic() + self.max_wait
        while len(jobs) < self.max_batch:
            try:
                job = self.pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self.pending.put(None)  # stop after this batch, once the queue is drained
                break
            jobs.append(job)
        return jobs, False

    def _run(self) -> None:
        while True:
            jobs, stop = self._collect()
            if stop:
                return
            groups: dict[Hashable, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                self.on_batch(len(group))
                try:
                    results = self.decode(group)
                except Exception as exc:  # noqa: BLE001 - every waiting handler must hear of it
                    for job in group:
                        job.future.set_exception(exc)
                    continue
                for job, result in zip(group, results, strict=True):
                    job.future.set_result(result)
