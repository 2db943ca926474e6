"""Run every benchmark and print one table:  python benchmarks/run.py [bus|worker|platform|build|backends|peers|scale|reload ...]

Goals are those of the embedded platform (docs/benchmarks.md); a goal missed is
a figure to print, not a failure.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks import (  # noqa: E402
    bench_backends,
    bench_build,
    bench_bus,
    bench_peers,
    bench_platform,
    bench_reload,
    bench_scale,
    bench_worker,
)


def bus_rows() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(bench_bus.run(tmp))


SUITES = {
    "bus": bus_rows,
    "worker": bench_worker.run,
    "platform": bench_platform.run,
    "build": bench_build.run,
    "backends": bench_backends.run,
    "peers": bench_peers.run,
    "scale": bench_scale.run,
    "reload": bench_reload.run,
}


def machine() -> str:
    cpus = len(__import__("os").sched_getaffinity(0))
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"


def main(names: list[str]) -> None:
    console = Console()
    table = Table("suite", "benchmark", "value", "unit", title=f"Cumulo benchmarks ({machine()})")
    for name in names or list(SUITES):
        with console.status(f"running {name} benchmarks…"):
            rows = SUITES[name]()
        for row in rows:
            table.add_row(name, str(row["benchmark"]), f"{row['value']:,}", str(row["unit"]))
    console.print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
