"""Sweeps: every cell of a :class:`~visfeed.state.sweep.SweepSpec` run as an ordinary run directory.

``cells`` runs one cell through the same runner as ``visfeed optimize`` (or ``resume``); ``local`` runs
cells in worker processes on this machine; ``ray_executor`` runs them as Ray tasks (optional extra
``visfeed[ray]``; nothing here imports Ray until that executor is used).
"""

from visfeed.agents.sweep.cells import CellOutcome, check_cells, run_cell
from visfeed.agents.sweep.local import LocalExecutor

__all__ = ["CellOutcome", "LocalExecutor", "check_cells", "run_cell"]
