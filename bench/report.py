"""A benchmark's figures: value, target, floor, and the machine they ran on."""

import contextlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection

# Every figure must be within this factor of its floor.
FLOOR_FACTOR = 5.0


@dataclass
class Figure:
    name: str
    value: float
    unit: str  # "s", "records/s", "ms", "MB", …
    target: float | None = None
    # "max": the value must not exceed the target (times, memory); "min": must reach it (rates)
    direction: str = "max"
    # The same work done by hand (SQL or raw I/O), in the unit of ``value``; None: no floor
    floor: float | None = None
    detail: str = ""
    # What the detail says, as numbers (requests made, files, states …): for the JSON's readers
    counts: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """How many times slower than the floor (1.0 = as fast as by hand)."""
        if self.floor in (None, 0) or self.value == 0:
            return None
        return self.value / self.floor if self.direction == "max" else self.floor / self.value

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.direction == "max" else self.value >= self.target

    @property
    def verdict(self) -> str:
        misses = []
        if self.meets_target is False:
            misses.append("target")
        if self.ratio is not None and self.ratio > FLOOR_FACTOR:
            misses.append(f"over {FLOOR_FACTOR:g} x floor")
        return "pass" if not misses else "miss (" + ", ".join(misses) + ")"


def machine() -> dict:
    info = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "database": connection.vendor,
    }
    try:
        with open("/proc/meminfo") as meminfo:
            total_kb = int(meminfo.readline().split()[1])
        info["memory_gb"] = round(total_kb / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            info["database"] = f"PostgreSQL {cursor.fetchone()[0]}"
    with contextlib.suppress(OSError):
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    return info


@dataclass
class Report:
    subscriptions: int
    machine: dict = field(default_factory=machine)
    started_at: str = field(default_factory=lambda: datetime.now(tz=UTC).isoformat())
    figures: list[Figure] = field(default_factory=list)
    # What could not be measured, and why (printed under the table).
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def table(self) -> str:
        rows = [("figure", "value", "target", "floor", "÷ floor", "verdict")]
        for f in self.figures:
            sign = "≤" if f.direction == "max" else "≥"
            rows.append(
                (
                    f.name,
                    f"{_number(f.value)} {f.unit}",
                    f"{sign} {_number(f.target)} {f.unit}" if f.target is not None else "",
                    f"{_number(f.floor)} {f.unit}" if f.floor is not None else "",
                    f"{f.ratio:.1f}" if f.ratio is not None else "",
                    f.verdict,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "-|-".join("-" * w for w in widths))
        m = self.machine
        lines.append("")
        lines.append(
            f"{self.subscriptions:,} subscriptions · {m.get('cpus')} CPUs "
            f"({m.get('cpu', '?')}) · {m.get('memory_gb', '?')} GB · {m.get('database')} · "
            f"Python {m.get('python')} · {m.get('host')} · commit {m.get('commit', '?')}"
        )
        lines += self.notes
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "subscriptions": self.subscriptions,
            "machine": self.machine,
            "started_at": self.started_at,
            "notes": self.notes,
            "figures": [
                {**asdict(f), "ratio_to_floor": f.ratio, "verdict": f.verdict} for f in self.figures
            ],
        }
        path.write_text(json.dumps(data, indent=2) + "\n")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
