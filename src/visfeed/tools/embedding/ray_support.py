"""Ray, the optional extra ``visfeed[ray]``: imported only here, and only when a Ray path is asked for."""

from __future__ import annotations

from typing import Any

from visfeed.errors import ConfigError

MISSING_RAY = "this needs Ray: install it with `pip install 'visfeed[ray]'`"


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError (exit 2) that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(MISSING_RAY) from exc
    return ray


def connect(address: str | None) -> bool:
    """Join the Ray instance at ``address`` (None: start or join a local one); True when this call connected.

    Worker logs stay with the workers (each run's trace and result carry what matters), so they do not
    scroll through the live table.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return True
