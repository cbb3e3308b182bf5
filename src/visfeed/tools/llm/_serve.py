"""Child-process entry point that runs ``llama_cpp.server`` and dies with its parent.

Why a wrapper: the parent stops the server on normal exit, on errors and on Ctrl-C, but a parent killed by
SIGKILL (or SIGTERM without a handler) runs no cleanup. A watchdog thread here notices that the parent is
gone (we get re-parented) and exits at once, so no orphan server keeps a port and a CPU core. It also
drops environment variables that ``llama_cpp.server``'s pydantic settings would silently read (``API_KEY``,
``PORT``, ``CONFIG_FILE``...), so the command line is the whole configuration.

Usage (by :class:`visfeed.tools.llm.local_server.LocalLLMServer`)::

    python -m visfeed.tools.llm._serve PARENT_PID [TEMP_LOG] -- --model M.gguf --port 8123 ...

``TEMP_LOG`` (optional) is a temporary log file the parent would have deleted; the watchdog deletes it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

_POLL_S = 0.5


def _watch_parent(parent_pid: int, temp_log: str | None) -> None:
    while True:
        if os.getppid() != parent_pid:
            if temp_log:
                with contextlib.suppress(OSError):
                    os.unlink(temp_log)
            os._exit(0)
        time.sleep(_POLL_S)


def _scrub_environment() -> None:
    from llama_cpp.server.settings import Settings

    names = {name.upper() for name in Settings.model_fields} | {"CONFIG_FILE"}
    for key in list(os.environ):
        if key.upper() in names:
            del os.environ[key]


def main(argv: list[str]) -> None:
    """Start the parent watchdog, then hand over to the llama_cpp server's own entry point."""
    if "--" not in argv or argv.index("--") not in (1, 2):
        raise SystemExit("usage: python -m visfeed.tools.llm._serve PARENT_PID [TEMP_LOG] -- LLAMA_SERVER_ARGS...")
    split = argv.index("--")
    parent_pid = int(argv[0])
    temp_log = argv[1] if split == 2 else None
    threading.Thread(target=_watch_parent, args=(parent_pid, temp_log), name="parent-watchdog", daemon=True).start()
    _scrub_environment()
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = ["llama_cpp.server", *argv[split + 1 :]]
    server_main()


if __name__ == "__main__":
    main(sys.argv[1:])
