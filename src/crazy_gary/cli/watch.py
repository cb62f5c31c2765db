"""`crazy-gary watch`: the status table, kept current by the server's event stream.

A thread reads `GET /api/endpoints/events` and hands each event to the main thread, which redraws the
table when something changed and, on a terminal, once a second so the auto-sleep countdown ticks.
When the stream breaks, the table says so and the watch reconnects (a new stream starts with a
fresh snapshot); Ctrl-C ends it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crazy_gary.cli.client import ServerClient
from crazy_gary.cli.render import recent_requests_table, status_table

if TYPE_CHECKING:
    import httpx2
    from rich.console import RenderableType

__all__ = ["parse_events", "watch_events"]

EVENTS_PATH = "/api/endpoints/events"
RECONNECT_EVERY = 2.0  # seconds between attempts while the server is gone
_RECENT = 5  # requests shown under the table
_CLOSED = "closed"  # what the reader thread hands over when its stream ends


def parse_events(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """(event name, decoded JSON data) for each event in `lines` of a text/event-stream.

    Our own few lines rather than a library: the SSE clients for Python are built on other HTTP
    stacks (httpx, requests, aiohttp) than the CLI's httpx2, and the format is a handful of rules.
    Comments (heartbeats) and events without data are skipped; `retry` and `id` are not needed here.
    """
    name, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
            continue
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "event":
            name = value
        elif field_name == "data":
            data.append(value)


@dataclass
class _View:
    """What the watch knows: every endpoint as last told, when it was told, and recent requests."""

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    told_at: dict[str, float] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    connected: bool = False

    def apply(self, name: str, data: Any, now: float) -> bool:
        """Take in one event; whether the table changed."""
        if not isinstance(data, dict):
            return False
        if name == "snapshot":
            endpoints = data.get("endpoints")
            self.endpoints = dict(endpoints) if isinstance(endpoints, dict) else {}
            self.told_at = dict.fromkeys(self.endpoints, now)
            requests = data.get("requests")
            self.requests = list(requests)[-_RECENT:] if isinstance(requests, list) else []
            self.connected = True
            return True
        if name == "request":
            self.requests = [*self.requests, data][-_RECENT:]
            return True
        key, endpoint = data.get("model_type"), data.get("endpoint")
        if isinstance(key, str) and isinstance(endpoint, dict):
            self.endpoints[key] = endpoint
            self.told_at[key] = now
            return True
        return False

    def current(self, now: float) -> dict[str, dict[str, Any]]:
        """The endpoints with their countdowns run down by the time since each was told."""
        shown = {}
        for key, endpoint in self.endpoints.items():
            left = endpoint.get("auto_sleep_in")
            if isinstance(left, int | float) and not isinstance(left, bool):
                elapsed = int(now - self.told_at.get(key, now))
                endpoint = {**endpoint, "auto_sleep_in": max(0, int(left) - elapsed)}
            shown[key] = endpoint
        return shown


def _read(response: httpx2.Response, inbox: queue.Queue[tuple[str, Any]]) -> None:
    import httpx2

    try:
        for event in parse_events(response.iter_lines()):
            inbox.put(event)
    except (httpx2.HTTPError, ValueError):
        pass  # a broken stream or a line that is not JSON: the watch reconnects
    finally:
        response.close()
        inbox.put((_CLOSED, None))


def watch_events(
    client: ServerClient,
    show: Callable[[RenderableType], None],
    *,
    tick: float | None,
    count: int | None,
) -> None:
    """Show the table on every change (and every `tick` seconds when given) until `count` frames
    were shown or Ctrl-C; the first connection must succeed, later ones are retried."""
    from rich.console import Group
    from rich.text import Text

    view = _View()
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    frames = 0
    retry_at: float | None = None
    response = client.stream(EVENTS_PATH)

    def start(stream: httpx2.Response) -> None:
        threading.Thread(target=_read, args=(stream, inbox), daemon=True, name="watch-events").start()

    def frame(now: float) -> None:
        nonlocal frames
        parts: list[RenderableType] = [status_table(view.current(now), now=time.time())]
        if view.requests:
            parts.append(recent_requests_table(view.requests))
        if not view.connected:
            parts.append(Text(f"lost the connection to {client.server}; reconnecting…", style="red"))
        show(Group(*parts))
        frames += 1

    if response is not None:
        start(response)
    while count is None or frames < count:
        now = time.monotonic()
        if retry_at is not None and now >= retry_at:
            retry_at = None
            again = client.stream(EVENTS_PATH, quiet=True)
            if again is None:
                retry_at = now + RECONNECT_EVERY
            else:
                start(again)
        try:
            name, data = inbox.get(timeout=tick if tick is not None else RECONNECT_EVERY)
        except queue.Empty:
            if tick is not None and view.endpoints:
                frame(time.monotonic())
            continue
        if name == _CLOSED:
            changed = view.connected
            view.connected = False
            retry_at = time.monotonic() + RECONNECT_EVERY
        else:
            changed = view.apply(name, data, time.monotonic())
        if changed:
            frame(time.monotonic())
