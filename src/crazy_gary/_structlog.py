"""structlog, loaded without rich.

`structlog.dev` imports rich — and, through `rich.traceback`, pygments — whenever rich is
installed, for a console renderer we do not use (ours formats tracebacks with structlog's plain
formatter). rich is installed for the CLI's tables, and those imports would cost the server ~5 MB of
its memory budget. So rich is hidden while structlog loads: a ``None`` entry in ``sys.modules``
makes ``import rich`` raise ImportError, which structlog handles as "rich is not installed". Only
structlog's own view of rich changes; the CLI imports rich normally afterwards.
"""

from __future__ import annotations

import sys

if "structlog" not in sys.modules and "rich" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        del sys.modules["rich"]

import structlog

__all__ = ["structlog"]
