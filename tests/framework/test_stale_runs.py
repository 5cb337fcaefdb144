"""The stale-run reaper closes only runs whose owning process is provably gone: same host, same
boot, same PID namespace, and no such process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import mlflow

from glta_pipelines.framework.hooks.tracking import _close_stale_runs
from glta_pipelines.framework.tracking import PROCESS_TAG, machine_identity, process_owner


def test_only_runs_of_a_dead_process_on_this_machine_are_closed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("reaper")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a pid that has just exited
    host, boot, namespace = machine_identity().split(":")
    owners = {
        "dead here": process_owner(int(dead)),
        "alive here": process_owner(os.getppid()),  # (its own pid counts as stale: an earlier session)
        "dead, other container with this host name": f"{host}:{boot}:{int(namespace or 0) + 1}:{dead}",
        "dead, before a reboot": f"{host}:{'0' * 8}:{namespace}:{dead}",
        "dead, older host:pid tag": f"{socket.gethostname()}:{dead}",
    }
    ids = {name: client.create_run(experiment, tags={PROCESS_TAG: owner}).info.run_id for name, owner in owners.items()}
    _close_stale_runs(client, experiment)
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"dead here": "KILLED", "alive here": "RUNNING",
                      "dead, other container with this host name": "RUNNING", "dead, before a reboot": "RUNNING",
                      "dead, older host:pid tag": "KILLED"}
