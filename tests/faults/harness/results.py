"""The results table: one row per scenario, every invariant and figure a number."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Columns shown in the printed table (the JSON file keeps everything).
COLUMNS = (
    "tickets_ok",
    "unknown_resolved",
    "lost",
    "unexpected",
    "messages_lost",
    "messages_unexpected",
    "double_assignment",
    "over_capacity",
    "timers_fired",
    "timers_early",
    "timers_missed",
    "timers_fired_twice",
    "cancelled_fired",
    "version_regressions",
    "projection_behind",
    "dead_letters",
    "converged_s",
)


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, scenario: str, row: dict[str, Any]) -> None:
        self.rows[scenario] = row

    def table(self) -> str:
        if not self.rows:
            return ""
        header = ["scenario", *COLUMNS]
        lines = [[name, *(_cell(row.get(c)) for c in COLUMNS)] for name, row in self.rows.items()]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
        fmt = " | ".join(f"{{:>{w}}}" for w in widths)
        return "\n".join([fmt.format(*header), "-+-".join("-" * w for w in widths), *(fmt.format(*r) for r in lines)])

    def write(self, default_dir: Path) -> Path:
        path = Path(os.environ.get("SUPPORTDESK_FAULTS_RESULTS") or default_dir / "faults-results.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.rows, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "" if value is None else str(value)
