"""Start several `serve` replicas on one PostgreSQL database and the machine's Redis; chat through one."""

from __future__ import annotations

import openai

from .conftest import REDIS, USER_KEY, Process, start_server


def on_redis(database_url: str, prefix: str, **env: str) -> dict[str, str]:
    """The environment of replicas sharing `database_url` and the machine's Redis under `prefix`."""
    return {
        "CRAZY_GARY_DATABASE_URL": database_url,
        "CRAZY_GARY_REDIS_URL": REDIS,
        "CRAZY_GARY_REDIS_PREFIX": prefix,
        **env,
    }


def replicas(simulator: Process, count: int, **env: str) -> list[Process]:
    started: list[Process] = []
    try:
        for _ in range(count):
            started.append(start_server(simulator, **env))
    except BaseException:
        for process in started:
            process.stop()
        raise
    return started


def _chat(replica: Process, model: str = "20b") -> None:
    chat = openai.OpenAI(api_key=USER_KEY, base_url=f"{replica.url}/v1", max_retries=0, timeout=60)
    assert chat.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]).choices
