"""Write the synthetic sample traces of `samples/traces/` (seeded: the same files every time).

.venv/bin/python scripts/sample_traces.py [DIRECTORY]
"""

from __future__ import annotations

import sys
from pathlib import Path

from crazy_gary.replay.synthetic import PATTERNS, synthetic_week, write_trace


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in PATTERNS:
        requests = synthetic_week(pattern, seed=1)
        path = directory / f"synthetic-{pattern}-week.csv"
        write_trace(requests, path)
        print(f"{path}: {len(requests):,} requests")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "samples" / "traces")
