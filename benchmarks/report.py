"""The one way a benchmark script saves its result: JSON at ``out`` (folders made), echoed to stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], out: str | Path, shown: Any = None) -> None:
    """Write ``report`` as indented JSON to ``out``; print ``shown`` (default: the whole report)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report if shown is None else shown, indent=2))
