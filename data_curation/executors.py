"""Executors: run ``fn(task, cfg)`` over tasks, yielding ``(task, result)`` as they finish.

* ``inline`` (workers=0): in the calling process (no timeout enforcement; for debugging).
* ``local``: a pool of ``spawn``-ed worker processes (each creates its own GL context on
  first render). Every task has a deadline: a worker that runs past ``timeout`` is killed
  (SIGKILL) and replaced, and the task yields a ``failed`` result with reason ``timeout``;
  a worker that dies yields ``failed: worker_crashed``.
* ``ray``: one Ray task per asset (``ray.init(address)``; a local instance when None);
  tasks past the timeout are cancelled with ``force=True``.

``fn`` must return a dict; exceptions from ``fn`` become ``failed`` results (never lost).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


def failure(task: Any, reason: str, seconds: float = 0.0) -> Dict[str, Any]:
    """The result recorded for a task whose worker timed out, crashed or raised."""
    return {"uid": getattr(task, "uid", str(task)), "source": getattr(task, "source", ""), "status": "failed",
            "reason": reason, "motion_magnitude": None, "caption": getattr(task, "caption", ""), "seconds": round(seconds, 3),
            "extra": dict(getattr(task, "extra", {}) or {}), "frames_rendered": 0}


def _worker_loop(conn, fn: Callable) -> None:  # runs in the child
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    conn.send("ready")  # start-up (imports) does not count against the first task's timeout
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        task, cfg = item
        try:
            result = fn(task, cfg)
        except Exception as err:  # never lose a task
            result = failure(task, f"error: {type(err).__name__}: {str(err)[:200]}")
            logger.debug(traceback.format_exc())
        conn.send(result)


def run_inline(fn: Callable, tasks: Iterable, cfg: Any) -> Iterator[Tuple[Any, Dict[str, Any]]]:
    for task in tasks:
        try:
            yield task, fn(task, cfg)
        except Exception as err:
            yield task, failure(task, f"error: {type(err).__name__}: {str(err)[:200]}")


class _Worker:
    def __init__(self, ctx, fn: Callable):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_loop, args=(child, fn), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.task = None
        self.started = 0.0

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run_local(fn: Callable, tasks: Iterable, cfg: Any, workers: int, timeout: float,
              startup_timeout: float = 600.0) -> Iterator[Tuple[Any, Dict[str, Any]]]:
    """Process pool with a per-task deadline (see the module docstring).

    A task's clock starts when a ready worker receives it; a worker that cannot start within
    ``startup_timeout`` seconds is an error of the environment (RuntimeError).
    """
    ctx = mp.get_context("spawn")
    pending = iter(tasks)
    pool = [_Worker(ctx, fn) for _ in range(max(1, workers))]
    spawned_at = time.monotonic()
    exhausted = False
    try:
        while True:
            for w in pool:
                if w.ready and w.task is None and not exhausted:
                    task = next(pending, None)
                    if task is None:
                        exhausted = True
                        break
                    w.conn.send((task, cfg))
                    w.task, w.started = task, time.monotonic()
            busy = [w for w in pool if w.task is not None]
            if exhausted and not busy:
                return
            starting = [w for w in pool if not w.ready]
            if not busy and starting and time.monotonic() - spawned_at > startup_timeout:
                raise RuntimeError(f"curation workers did not start within {startup_timeout:g} s")
            deadline = min([w.started + timeout for w in busy], default=time.monotonic() + 5.0)
            watch = [w.conn for w in busy + starting] + [w.proc.sentinel for w in busy + starting]
            ready = wait(watch, timeout=max(0.0, deadline - time.monotonic()))
            for i, w in enumerate(pool):
                if not w.ready:
                    if w.conn in ready:
                        try:
                            w.ready = w.conn.recv() == "ready"
                        except (EOFError, OSError):
                            raise RuntimeError(f"a curation worker died at start-up (exit code {w.proc.exitcode})") from None
                    elif w.proc.sentinel in ready:
                        raise RuntimeError(f"a curation worker died at start-up (exit code {w.proc.exitcode})")
                    continue
                if w.task is None:
                    continue
                task = w.task
                if w.conn in ready:
                    try:
                        result = w.conn.recv()
                    except (EOFError, OSError):
                        result = failure(task, f"worker_crashed: worker exited with code {w.proc.exitcode}", time.monotonic() - w.started)
                        w.kill()
                        pool[i] = _Worker(ctx, fn)
                        spawned_at = time.monotonic()
                    else:
                        w.task = None
                    yield task, result
                elif w.proc.sentinel in ready or not w.proc.is_alive():
                    w.kill()
                    pool[i] = _Worker(ctx, fn)
                    spawned_at = time.monotonic()
                    yield task, failure(task, f"worker_crashed: worker exited with code {w.proc.exitcode}", time.monotonic() - w.started)
                elif time.monotonic() - w.started >= timeout:
                    w.kill()
                    pool[i] = _Worker(ctx, fn)
                    spawned_at = time.monotonic()
                    logger.warning("asset %s timed out after %.0f s; worker killed", getattr(task, "uid", task), timeout)
                    yield task, failure(task, f"timeout: no result after {timeout:g} s (worker killed)", timeout)
    finally:
        for w in pool:
            try:
                if w.task is None and w.proc.is_alive():
                    w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in pool:
            w.proc.join(2)
            w.kill()


def run_ray(fn: Callable, tasks: Iterable, cfg: Any, workers: int, timeout: float, address: Optional[str] = None) -> Iterator[Tuple[Any, Dict[str, Any]]]:
    """One Ray task per asset, at most ``max(workers, 1)`` in flight."""
    import ray

    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": max(1, workers)}
        ray.init(ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, **kwargs)
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    cfg_ref = ray.put(cfg)
    pending = iter(tasks)
    in_flight: Dict[Any, Tuple[Any, float]] = {}
    limit = max(1, workers)  # in flight = running, so the timeout clock measures run time
    while True:
        while len(in_flight) < limit:
            task = next(pending, None)
            if task is None:
                break
            in_flight[remote.remote(task, cfg_ref)] = (task, None)
        if not in_flight:
            return
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        now = time.monotonic()
        for ref in ready:
            task, _ = in_flight.pop(ref)
            try:
                yield task, ray.get(ref)
            except Exception as err:
                yield task, failure(task, f"error: {type(err).__name__}: {str(err)[:200]}")
        for ref, (task, started) in list(in_flight.items()):
            if started is None:  # the clock starts when Ray reports the task running; approximate: first poll
                in_flight[ref] = (task, now)
            elif now - started > timeout:
                ray.cancel(ref, force=True)
                in_flight.pop(ref)
                yield task, failure(task, f"timeout: no result after {timeout:g} s (ray task cancelled)", now - started)


def run_tasks(fn: Callable, tasks: Iterable, cfg: Any, executor: str = "local", workers: int = 1, timeout: float = 600.0,
              address: Optional[str] = None) -> Iterator[Tuple[Any, Dict[str, Any]]]:
    """Dispatch to an executor by name (``workers=0`` with ``local`` runs inline)."""
    if executor == "local":
        if workers == 0:
            return run_inline(fn, tasks, cfg)
        return run_local(fn, tasks, cfg, workers, timeout)
    if executor == "ray":
        return run_ray(fn, tasks, cfg, workers, timeout, address)
    raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
