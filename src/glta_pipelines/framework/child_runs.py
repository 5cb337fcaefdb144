"""Child ``kedro run`` processes, as ``kedro seeds`` and ``kedro tune`` start them: the command
line, stopping one on Ctrl-C or SIGTERM, and the end of its log for an error message."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from glta_pipelines.framework.tracking import flatten


def dotlist(params: dict[str, Any]) -> str:
    """The ``--params`` text that parses back to ``params`` (null and booleans as YAML writes them)."""
    def text(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(text(v) for v in value) + "]"
        if value is None:
            return "null"
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)

    return ",".join(f"{key}={text(value)}" for key, value in flatten(params).items())


def kedro_command() -> list[str]:
    script = Path(sys.executable).with_name("kedro")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kedro"]


def terminate_on_sigterm() -> None:
    """SIGTERM ends the command as Ctrl-C does (the running child is stopped, the runs closed KILLED)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def stop(process: subprocess.Popen, timeout: float = 60) -> None:
    """Stop a child run as Ctrl-C would (SIGINT: its run closes itself as KILLED); kill it after ``timeout`` s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def log_tail(path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a child's log, joined for a one-line error message."""
    return " / ".join([line for line in Path(path).read_text().splitlines() if line.strip()][-lines:])
