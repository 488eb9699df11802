"""Workers: a thread pool that claims and runs items, a heartbeat, a process pool for CPU work."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from hounsfield.archive.context import Archive, open_archive
from hounsfield.settings import Settings
from hounsfield.sites.links import POOL
from hounsfield.workers.registry import load_builtin, processor_for
from hounsfield.workqueue import wake
from hounsfield.workqueue.items import Done, Failed, Later, WorkItem, now
from hounsfield.workqueue.kinds import kind_of
from hounsfield.workqueue.queue import Queue

log = logging.getLogger(__name__)


class Worker:
    """Runs this node's share of the queue on `threads` threads until stopped.

    `may_claim`, when given, is asked before every claim: while it returns False (or raises)
    the worker claims nothing and looks again at its next poll (or `wake`); items already
    running go on and keep their leases. A node uses it to drain, or to stay passive while
    it cannot carry out work (its storage is not reachable)."""

    def __init__(
        self,
        archive: Archive,
        *,
        threads: int | None = None,
        processes: int | None = None,
        kinds: Collection[str] | None = None,
        pool_opener: Callable[[Settings], Archive] = open_archive,
        may_claim: Callable[[], bool] | None = None,
    ) -> None:
        settings = archive.settings
        load_builtin()
        self.archive = archive
        self.queue = Queue(archive.engine, settings.node_name, settings.queue_lease_seconds)
        self.threads = threads if threads is not None else settings.queue_threads
        self.processes = processes if processes is not None else settings.queue_processes
        self.kinds = kinds
        self.pool_opener = pool_opener
        self.may_claim = may_claim
        self._claim_error = False
        self.poll = settings.queue_poll_seconds
        self.processed = 0
        self._held: dict[int, WorkItem] = {}
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._bell = wake.Bell(max(self.threads, 1))
        self._threads: list[threading.Thread] = []
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads and the heartbeat."""
        self._stop.clear()
        wake.subscribe(self.wake)  # work queued in this process is picked up at once
        self._spawn(self._heartbeat, "wq-heartbeat")
        for n in range(self.threads):
            self._spawn(self._loop, f"wq-{n}")
        log.info("work queue: %d threads, %d processes", self.threads, self.processes)

    def run_until_idle(self) -> int:
        """Run ready items on all threads until none is left; how many were run."""
        start = self.processed
        self._stop.clear()
        heartbeat = self._spawn(self._heartbeat, "wq-heartbeat")
        workers = [self._spawn(self._drain, f"wq-{n}") for n in range(max(self.threads, 1))]
        for t in workers:
            t.join()
        self._stop.set()
        heartbeat.join()
        self._threads.clear()
        self._shutdown_pool()
        return self.processed - start

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._bell.ring()

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop claiming, let running items finish for up to `grace_seconds`."""
        wake.unsubscribe(self.wake)
        self._stop.set()
        self._bell.ring_all()
        for t in self._threads:
            t.join(grace_seconds)
        self._threads.clear()
        self._shutdown_pool()
        POOL.close_all()  # forwarding links kept open for the next study

    def run_one(self) -> WorkItem | None:
        """Claim and run one item in the calling thread; the item, or None if none was ready
        (or `may_claim` said no)."""
        item = self.queue.claim(self.kinds) if self._may_claim() else None
        if item is not None:
            self._bell.ring()  # another idle thread looks for the next one meanwhile
            self._run(item)
        return item

    # -- internals -----------------------------------------------------------------------------

    def _spawn(self, target: object, name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)
        return t

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.run_one()
            except Exception:
                log.exception("work queue claim failed")
                item = None
            if item is None:
                self._bell.wait(self.poll)

    def _may_claim(self) -> bool:
        if self.may_claim is None:
            return True
        try:
            allowed = bool(self.may_claim())
        except Exception as exc:
            if not self._claim_error:  # once until it answers again, not at every poll
                log.warning("work queue: claiming nothing, may_claim failed: %s", exc)
            self._claim_error = True
            return False
        self._claim_error = False
        return allowed

    def _drain(self) -> None:
        while not self._stop.is_set() and self.run_one() is not None:
            pass

    def _heartbeat(self) -> None:
        interval = max(self.queue.lease.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            with self._held_lock:
                held = list(self._held.values())
            try:
                lost = self.queue.renew(held)
                POOL.reap()  # release forwarding links that lingered long enough
            except Exception:
                log.exception("work queue heartbeat failed")
                continue
            for pk in lost:
                log.warning("lease on work item %d was lost (cancelled or reclaimed)", pk)

    def _run(self, item: WorkItem) -> None:
        with self._held_lock:
            self._held[item.pk] = item
        try:
            outcome = self._execute(item)
        except Failed as exc:
            self.queue.fail(item, str(exc), retry_in=exc.retry_in, final=exc.final)
        except Exception as exc:
            log.debug("work item %d failed", item.pk, exc_info=True)
            self.queue.fail(item, f"{type(exc).__name__}: {exc}")
        else:
            if isinstance(outcome, Later):
                self.queue.postpone(item, outcome.at, outcome.reason, outcome.status)
                if outcome.at <= now():
                    self.wake()
            elif not self.queue.complete(item, outcome.result):
                log.warning("work item %d finished after its lease was lost", item.pk)
        finally:
            with self._held_lock:
                self._held.pop(item.pk, None)
                self.processed += 1

    def _execute(self, item: WorkItem) -> Done | Later:
        if kind_of(item.kind).heavy and self.processes > 0:
            try:
                return self._process_pool().submit(_run_in_child, item).result()
            except BrokenProcessPool:
                with self._pool_lock:
                    self._pool = None
                raise
        return processor_for(item.kind)(self.archive, item)

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_child,
                    initargs=(self.archive.settings, self.pool_opener),
                )
            return self._pool

    def _shutdown_pool(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


_CHILD: dict[str, Archive] = {}


def _init_child(settings: Settings, opener: Callable[[Settings], Archive]) -> None:
    load_builtin()
    _CHILD["archive"] = opener(settings)


def _run_in_child(item: WorkItem) -> Done | Later:
    return processor_for(item.kind)(_CHILD["archive"], item)
