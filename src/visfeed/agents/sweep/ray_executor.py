"""The Ray executor: each sweep cell is a Ray task with a resource request; Ray retries cells whose worker died.

Why Ray and nothing home-made: Ray already places tasks by their resource requests (a GPU for backbones
that use one, CPUs otherwise), retries a task whose worker process or node died (``max_retries``), and the
same code runs on a laptop (``ray.init()`` starts or joins a local instance) and on a cluster (an address).
A retried cell resumes from its run's own SQLite checkpoint and response cache (:func:`run_cell`), so no
completed LLM call is repeated. The sweep directory must be on storage every worker sees (a shared or
network file system on a cluster).

Ray is the optional extra ``visfeed[ray]``: it is imported only when this executor runs.
"""

from __future__ import annotations

import logging
from typing import Any

from visfeed.agents.sweep.cells import CellOutcome, run_cell
from visfeed.agents.sweep.local import OnDone, Outcomes, skip_done, wants_gpu
from visfeed.state.sweep import Cell, Limits
from visfeed.tools.embedding.ray_support import connect, import_ray

log = logging.getLogger(__name__)


def _run_cell_task(cell_json: str) -> dict[str, Any]:
    """Body of the Ray task (module-level, so workers import it by name)."""
    return run_cell(Cell.model_validate_json(cell_json)).model_dump()


class RayExecutor:
    """Runs cells as Ray tasks: ``num_cpus`` from the limits, ``num_gpus=1`` for cells that use a GPU."""

    def __init__(self, limits: Limits, *, address: str | None = None, max_retries: int = 3) -> None:
        self.limits = limits
        self.address = address
        self.max_retries = max_retries

    def run(self, cells: list[Cell], on_done: OnDone) -> list[CellOutcome]:
        """Submit every cell not yet done, report each as it finishes; disconnect if this call connected."""
        ray = import_ray()
        finish = Outcomes(on_done)
        pending = skip_done(cells, finish)
        if not pending:
            return finish.heard
        own = connect(self.address)
        try:
            gpus = float(ray.cluster_resources().get("GPU", 0))
            task = ray.remote(_run_cell_task)
            refs = {
                task.options(
                    num_cpus=self.limits.cpus_per_cell,
                    num_gpus=1 if wants_gpu(cell, gpus) else 0,
                    max_retries=self.max_retries,
                    name=f"visfeed cell {cell.id}",
                ).remote(cell.model_dump_json()): cell
                for cell in pending
            }
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    cell = refs.pop(ref)
                    try:
                        finish(CellOutcome.model_validate(ray.get(ref)))
                    except ray.exceptions.RayError as exc:  # retries spent: the worker kept dying
                        log.error("cell %s failed on Ray: %s", cell.id, exc)
                        finish(CellOutcome(id=cell.id, status=f"failed: {type(exc).__name__}"))
        finally:
            if own:
                ray.shutdown()
        return finish.heard
