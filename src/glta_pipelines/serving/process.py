"""A command-line server (``mlflow server``, ``mlflow models serve``, ``kedro serve``) started from
this environment and waited for until it answers: what the serving and tracking-server tests and
the serving benchmarks talk to."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def mlflow_command(args: Sequence[str], ready_url: str, log_path: Path, **options):
    """``mlflow <args>`` as a :func:`server_command`."""
    return server_command("mlflow", args, ready_url, log_path, **options)


@contextlib.contextmanager
def server_command(program: str, args: Sequence[str], ready_url: str, log_path: Path, *, timeout: float = 240,
                   env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """``<program> <args>`` of this environment (``mlflow``, ``kedro``), its output in ``log_path``;
    yields once a GET of ``ready_url`` answers 200, and stops the server on the way out.

    Raises :class:`RuntimeError` with the log's end when the server exits or stays silent for ``timeout`` s.
    """
    bin_dir = Path(sys.executable).parent  # mlflow starts uvicorn from PATH: the environment's own
    env = {**os.environ, **(env or {}), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with Path(log_path).open("w") as log:
        process = subprocess.Popen([str(bin_dir / program), *args], cwd=cwd, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            _wait_for(process, ready_url, Path(log_path), timeout)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(process: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}); its log ends: "
                               f"{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer on {url} after {timeout:.0f} s; the server's log ends: "
                       f"{log_path.read_text()[-3000:]}")
