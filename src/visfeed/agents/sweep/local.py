"""The local executor: sweep cells in worker processes on this machine, within CPU, GPU and LLM limits.

Why processes (spawned, reused across cells) and not threads: each cell owns its torch threads, its
embedded LLM server and its event loop, a crash stays inside its process, and Ctrl-C reaches every
worker, which marks its run 'interrupted' (resumable). The admission rule is small on purpose: a cell
starts when a worker is free and its provider and GPU limits allow it; Ray is the scheduler for anything
bigger (:mod:`visfeed.agents.sweep.ray_executor`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from visfeed.agents.sweep.cells import CellOutcome, is_done, run_cell
from visfeed.state.rundir import load_result
from visfeed.state.sweep import Cell, Limits

log = logging.getLogger(__name__)

OnDone = Callable[[CellOutcome], None]


def provider_key(cell: Cell) -> str:
    """The provider family a limit applies to ('local', 'openai', a plug-in spec)."""
    return cell.provider.split(":", 1)[0]


def wants_gpu(cell: Cell, gpus: float) -> bool:
    """Whether a cell should hold a GPU: asked for, or left to the machine and the machine has one."""
    if cell.gpu is not None:
        return cell.gpu and gpus > 0
    return gpus > 0 and cell.config.backbone.device in ("auto", "cuda")


def visible_gpus() -> int:
    """CUDA devices torch sees here (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _init_worker(threads: int) -> None:
    """Give each worker its share of the cores, so concurrent cells do not oversubscribe them."""
    import torch

    torch.set_num_threads(threads)


class Outcomes:
    """The outcomes heard so far, each passed on to the caller's ``on_done`` as it arrives."""

    def __init__(self, on_done: OnDone) -> None:
        self.on_done = on_done
        self.heard: list[CellOutcome] = []

    def __call__(self, outcome: CellOutcome) -> None:
        """Keep and pass on one outcome."""
        self.heard.append(outcome)
        self.on_done(outcome)


def skip_done(cells: list[Cell], on_done: OnDone) -> list[Cell]:
    """Report finished cells as skipped (no process needed) and return the others, first seed first.

    Why seed order: the cells running together then belong to different columns, so they do not embed the
    same images and templates twice at once, later seeds find them in the embedding cache, and a sweep
    stopped halfway already has a value in every column.
    """
    todo = []
    for cell in cells:
        result = load_result(cell.run_dir)
        if result is not None and is_done(result.status):
            on_done(CellOutcome(id=cell.id, status=result.status, skipped=True))
        else:
            todo.append(cell)
    return sorted(todo, key=lambda c: c.seed)


class LocalExecutor:
    """Runs cells in a pool of spawned worker processes."""

    def __init__(self, limits: Limits, *, gpus: int | None = None) -> None:
        self.limits = limits
        self.gpus = visible_gpus() if gpus is None else gpus
        self.workers = limits.cells or max(1, os.cpu_count() or 1)

    def _admissible(self, cell: Cell, providers: Counter[str], gpus_busy: int) -> bool:
        cap = self.limits.per_provider.get(provider_key(cell))
        if cap is not None and providers[provider_key(cell)] >= cap:
            return False
        return not (wants_gpu(cell, self.gpus) and gpus_busy >= self.gpus)

    def run(self, cells: list[Cell], on_done: OnDone) -> list[CellOutcome]:
        """Run every cell not yet done; ``on_done`` hears of each as it finishes (skipped ones first)."""
        finish = Outcomes(on_done)
        pending = skip_done(cells, finish)
        if not pending:
            return finish.heard
        workers = min(self.workers, len(pending))
        threads = max(1, (os.cpu_count() or 1) // workers)
        running: dict[Future[CellOutcome], Cell] = {}
        providers: Counter[str] = Counter()
        gpus_busy = 0
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
            while pending or running:
                for cell in list(pending):
                    if len(running) < workers and self._admissible(cell, providers, gpus_busy):
                        pending.remove(cell)
                        try:
                            future = pool.submit(run_cell, cell)
                        except BrokenProcessPool:  # a worker died earlier: the pool takes no more work
                            finish(CellOutcome(id=cell.id, status="failed: the worker pool broke (a worker died)"))
                            continue
                        running[future] = cell
                        providers[provider_key(cell)] += 1
                        gpus_busy += wants_gpu(cell, self.gpus)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = running.pop(future)
                    providers[provider_key(cell)] -= 1
                    gpus_busy -= wants_gpu(cell, self.gpus)
                    try:
                        finish(future.result())
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        log.error("cell %s: its worker failed: %s", cell.id, exc)
                        finish(CellOutcome(id=cell.id, status=f"failed: worker died ({exc})"))
        return finish.heard
