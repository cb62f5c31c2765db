"""Structured logs: one processor chain for structlog and stdlib records, and secrets never written.

`configure_logging(settings)` puts one handler on the root logger whose
`structlog.stdlib.ProcessorFormatter` renders every record — ours, structlog's, and those of
uvicorn, huggingface_hub, aiohttp and httpx2 — as a JSON line (or, on a terminal, structlog's
console format) with an ISO UTC timestamp, the level, the logger's name and the event. Before a
record is rendered, its exception is formatted to text and a :class:`Redactor` replaces every
known secret and everything that looks like one with ``[redacted]``, in the event and in every value.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from crazy_gary._structlog import structlog
from crazy_gary.config import Settings
from crazy_gary.core.manager import ManagerEvent
from crazy_gary.redaction import REDACTED, Redactor

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "Redactor",
    "configure_logging",
    "flush_logs",
    "get_logger",
    "log_manager_event",
    "secrets_of",
]

_CAPACITY = 10_000  # lines waiting for a slow output before new ones are dropped
_FLUSH_WAIT = 2.0  # seconds a flush (and so the exit) waits for a stuck output
_LEAD = ("timestamp", "level", "logger", "event", "request_id")

# Libraries whose records we route through our handler (some install their own handlers).
_LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "huggingface_hub",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "httpx",
    "httpx2",
    "httpcore",
)
# Libraries that log every HTTP call at info: one line per management poll is noise.
_CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "aiohttp.access", "alembic")


def secrets_of(settings: Settings) -> list[str]:
    """Every secret `settings` holds: the Hugging Face token and each API key."""
    found = [key.key for key in settings.api_keys]
    if settings.huggingface_api_key is not None:
        found.append(settings.huggingface_api_key.get_secret_value())
    found.append(settings.token)
    return found


def _lead_fields(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Timestamp, level, logger, event and request id first: lines read alike whatever the source."""
    ordered = {key: event_dict.pop(key) for key in _LEAD if key in event_dict}
    ordered.update(event_dict)
    return ordered


_BATCH = 512  # lines written by one system call at most


class _Handler(logging.Handler):
    """Our root handler: formats on the caller's thread, writes on its own.

    Formatting where the record is made keeps the request's context variables; writing elsewhere
    means a slow or stuck reader of the output (a full pipe) never stalls the event loop. When
    `capacity` lines wait, new ones are dropped, and a line says how many once the output moves.
    Its class marks it, so a second `configure_logging` replaces it.
    """

    def __init__(self, stream: TextIO, capacity: int = _CAPACITY) -> None:
        super().__init__()
        self._stream = stream
        self._fd = _fileno(stream)
        self._lines: queue.Queue[str | None] = queue.Queue(capacity)
        self._dropped = 0
        self._count_lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_lines, name="crazy-gary-logs", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # noqa: BLE001 - as logging's own handlers: logging must never raise
            # Not handleError: it would print the record's raw message and arguments, secrets and all.
            line = f"a {record.levelname} record of {record.name} could not be written: {type(exc).__name__}"
        self.put(line)

    def put(self, line: str) -> None:
        """Queue a formatted line for the writer (dropped, and counted, when `capacity` wait)."""
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            with self._count_lock:
                self._dropped += 1

    def flush(self, timeout: float = _FLUSH_WAIT) -> None:
        """Wait until every queued line is written, at most `timeout` seconds (the output may be stuck)."""
        waiting = self._lines.all_tasks_done
        with waiting:
            waiting.wait_for(lambda: self._lines.unfinished_tasks == 0, timeout)

    def close(self) -> None:
        self.flush()
        with contextlib.suppress(queue.Full):
            self._lines.put_nowait(None)
        super().close()

    def _write_lines(self) -> None:
        # Under load many lines wait at once: write them in one go (one syscall, one wake-up of
        # this thread), rather than a line at a time.
        while (line := self._lines.get()) is not None:
            batch, done = [line], False
            while len(batch) < _BATCH:
                try:
                    more = self._lines.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batch.append(more)
            try:
                self._write("\n".join(batch))
                with self._count_lock:
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    self._write(self.format(_dropped_record(dropped)))
            except (OSError, ValueError):
                pass  # a closed or broken output: there is nowhere left to say so
            finally:
                for _ in batch:
                    self._lines.task_done()
            if done:
                break
        self._lines.task_done()

    def _write(self, line: str) -> None:
        if self._fd is None:
            self._stream.write(line + "\n")
            self._stream.flush()
            return
        # Straight to the descriptor: a thread blocked inside a buffered stream's lock would make
        # the interpreter abort at exit; one blocked in os.write is simply left behind.
        data = (line + "\n").encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(self._fd, data) :]


def _fileno(stream: TextIO) -> int | None:
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _dropped_record(count: int) -> logging.LogRecord:
    return logging.LogRecord(
        "crazy_gary.logs",
        logging.WARNING,
        __file__,
        0,
        "%d log lines were dropped: the log output did not keep up",
        (count,),
        None,
    )


def configure_logging(
    settings: Settings | None = None,
    *,
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
    json: bool | None = None,
    level: int | str = logging.INFO,
) -> Redactor:
    """Route structlog and stdlib logging to `stream` (stderr) through one redacting chain.

    JSON lines unless `stream` is a terminal (`json` decides when given). Secrets are those of
    `settings` and `secrets`; add more later through the returned :class:`Redactor`. Calling it
    again replaces the previous set-up instead of adding to it.
    """
    stream = stream if stream is not None else sys.stderr
    redactor = Redactor([*(secrets_of(settings) if settings is not None else ()), *secrets])
    as_json = json if json is not None else not _is_terminal(stream)
    _install_root_handler(stream, _formatter(redactor, as_json=as_json), level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return redactor


def _formatter(redactor: Redactor, *, as_json: bool) -> structlog.stdlib.ProcessorFormatter:
    """The one chain every record goes through: context, level, time, traceback, redaction."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # to text first, so the traceback is redacted too
            redactor,
            _lead_fields,
            renderer,
        ],
    )


def _install_root_handler(stream: TextIO, formatter: logging.Formatter, level: int | str) -> None:
    """Our handler alone on the root logger (replacing an earlier one); libraries propagate to it."""
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for own in list(library.handlers):  # uvicorn's dictConfig and huggingface_hub add their own
            library.removeHandler(own)
        library.propagate = True
    quiet = logging.WARNING if root.getEffectiveLevel() >= logging.INFO else logging.NOTSET
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def log_fast(logger: logging.Logger, method: str, event: str, fields: dict[str, Any]) -> bool:
    """Log `event` with `fields` at `method` ("info", "warning", "error") as structlog would, through
    our handler's own chain of processors, without a structlog wrapper or a stdlib record; False
    (nothing logged) unless our handler alone would have written the line.

    For the line of every request: making the record and passing it through logging's machinery
    cost more than the rest of the line (about half of it). The line is the same, by construction.
    """
    level = _LEVELS[method]
    if not logger.isEnabledFor(level):
        return True  # the level is off: nothing to write, as structlog's filter_by_level
    handler = _sole_handler(logger)
    if handler is None or level < handler.level:
        return False
    formatter = handler.formatter
    if not isinstance(formatter, structlog.stdlib.ProcessorFormatter):
        return False
    event_dict: Any = {"event": event, **fields, "_record": None, "_from_structlog": True}
    try:
        for processor in formatter.processors:
            event_dict = processor(logger, method, event_dict)
    except Exception:  # noqa: BLE001 - the slow path writes the line or says why it could not
        return False
    handler.put(str(event_dict))
    return True


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _sole_handler(logger: logging.Logger) -> _Handler | None:
    """Our root handler when it is the only one a record of `logger` would reach, unfiltered."""
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:  # up to the root, whose parent is None
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    if node is None or node.filters or len(node.handlers) != 1:
        return None
    (handler,) = node.handlers
    return handler if type(handler) is _Handler and not handler.filters else None


def flush_logs(timeout: float = _FLUSH_WAIT) -> None:
    """Wait until the lines logged so far are written (at most `timeout` seconds)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            handler.flush(timeout)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing through the stdlib logger `name`, whether structlog is configured or not.

    So the app's lines follow `configure_logging` when it ran, and stay quiet (below warning) when it
    did not, as in tests that build many apps.
    """
    wrapped: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[structlog.stdlib.filter_by_level, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return wrapped


_operations = get_logger("crazy_gary.operations")


def log_manager_event(event: ManagerEvent) -> None:
    """Log one manager event: an operation started or finished, or a state change, at info; a
    circuit opened, at warning."""
    if event.kind == "operation":
        _operations.info(
            "operation_started", operation=event.operation, endpoint=event.key, actor=event.actor
        )
    elif event.kind == "operation_done":
        _operations.info(
            "operation_finished",
            operation=event.operation,
            endpoint=event.key,
            actor=event.actor,
            success=event.success,
            error=event.error,
        )
    elif event.kind == "state":
        _operations.info("state_changed", endpoint=event.key, status=event.status, hf_state=event.hf_state)
    elif event.kind == "wake_request":
        _operations.info("wake_request_sent", endpoint=event.key, kind=event.operation)
    elif event.kind == "circuit_open":
        _operations.warning("circuit_opened", endpoint=event.key)
