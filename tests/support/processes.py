"""Child processes that a test means to interrupt.

A suite started in the background (``make test &`` from a script, ``nohup``) runs with SIGINT ignored, and
every child inherits that; Python then installs no KeyboardInterrupt handler, so a Ctrl-C the test sends
does nothing. Pass :func:`default_sigint` as ``preexec_fn`` so the child gets the default handling back
and the test behaves the same in the foreground and in the background.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """Restore the default SIGINT disposition in the child, before it execs (``Popen(preexec_fn=...)``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
