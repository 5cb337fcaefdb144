"""Lineage of every persisted output, and the refusal to mix generations.

Each versioned output gets a ``lineage.json`` beside it in its version folder: the node that
produced it, the dataset it was ingested from, and ``built_from``: every node execution upstream
of it, transitively, as ``node -> version`` (a version is the save version of that node's run;
the outputs of one run share it). Before a run starts, :class:`LineagePlan` merges the lineage of
each node's inputs; a node that would read two generations of one upstream node (a LightGCN
trained on another split, titles from another dataset, a failed run's outputs beside older ones,
a ``--load-versions`` mix) is refused with the inputs that disagree and the command that
rebuilds them. Missing inputs are refused together, with the stages that write them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import fsspec
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.files import atomic_path, user_url
from glta_pipelines.pipeline_registry import STAGES
from kedro.io.core import AbstractVersionedDataset, DatasetError, get_filepath_str
from kedro.pipeline import Pipeline

log = logging.getLogger(__name__)

SIDECAR = "lineage.json"
THIS_RUN = "(this run)"
# one lock per user and machine: the runs whose save versions could collide share a clock


class LineageError(InputError):
    """A node's inputs come from different generations of an upstream node, or another dataset."""


@dataclass
class Lineage:
    """What one dataset (or a node's merged inputs) was built from."""

    built_from: dict[str, str] = field(default_factory=dict)  # node -> version of the run that executed it
    carrier: dict[str, str] = field(default_factory=dict)  # node -> the input that brought it in
    source: str | None = None  # the dataset it was ingested from
    source_carrier: str | None = None

    def copy(self) -> Lineage:
        return Lineage(dict(self.built_from), dict(self.carrier), self.source, self.source_carrier)


class LineagePlan:
    """The lineage of every dataset a run reads or writes, computed before its first node."""

    def __init__(self, pipeline: Pipeline, catalog: Any, full: Pipeline, source: str | None) -> None:
        self.catalog = catalog
        self.stage = {node.name: node.namespace or node.name for node in full.nodes}
        self.stages = [s for s in STAGES if s in self.stage.values()]  # in run order
        self.producer = {out: node.name for node in full.nodes for out in node.outputs}
        self.datasets: dict[str, Lineage] = {}
        self.inputs: dict[str, str] = {}  # persisted input -> the version this run reads
        self.outputs = {out: node.name for node in pipeline.nodes for out in node.outputs}
        self._written: set[str] = set()
        self._read_inputs(pipeline)
        for node in pipeline.nodes:  # topological order
            merged = Lineage()
            for name in node.inputs:
                if name in self.datasets:
                    self._merge(merged, self.datasets[name], node.name)
            if source is not None and not [i for i in node.inputs if not i.startswith("param")]:
                merged.source, merged.source_carrier = source, f"the parameter dataset read by {node.name}"
            for name in node.outputs:
                own = merged.copy()
                own.built_from[node.name], own.carrier[node.name] = THIS_RUN, name
                self.datasets[name] = own

    def _read_inputs(self, pipeline: Pipeline) -> None:
        missing: dict[str, list[str]] = {}
        for name in sorted(pipeline.inputs()):
            dataset = versioned(self.catalog, name)
            if dataset is None:
                continue
            try:
                version = dataset.resolve_load_version()
                path = Location.of(dataset, dataset._get_load_path())
            except DatasetError:
                version, path = None, None
            if (path is None or not path.exists()) and name not in self.producer:  # an input users provide
                folder = Location.of(dataset, dataset._filepath)
                raise InputError(f"catalog entry {name}", f"no version under {folder.url()}",
                                 f"the table to read, saved as a version: {folder.url()}/<version>/{folder.path.name} "
                                 "(README: Batch recommendations)")
            if path is None or not path.exists():
                stage = self.stage.get(self.producer.get(name, ""), "an earlier run")
                missing.setdefault(stage, []).append(name if version is None else f"{name} version {version}")
                continue
            self.inputs[name] = version
            if name not in self.producer:  # a table users provide (recommend.requests): no upstream to check
                continue
            self.datasets[name] = read_lineage(path.sidecar(), name, version, self.producer.get(name, name))
        if missing:
            stages = sorted(missing, key=lambda s: self.stages.index(s) if s in self.stages else len(self.stages))
            found = "; ".join(f"{', '.join(missing[s])} (written by stage {s})" for s in stages)
            known = [self.stages.index(s) for s in stages if s in self.stages]
            first = self.stages[min(known):max(known) + 1] if known else stages  # with the stages in between
            raise InputError("inputs of this run", f"no saved {found}",
                             f"outputs of an earlier run: run `kedro run --pipelines={','.join(first)}` first "
                             "(or `kedro run --pipelines=full`)")

    def _merge(self, into: Lineage, other: Lineage, node: str) -> None:
        for producer, version in other.built_from.items():
            known = into.built_from.get(producer)
            if known is not None and known != version:
                raise self._mixed(node, producer, (into.carrier[producer], known), (other.carrier[producer], version))
            into.built_from[producer] = version
            into.carrier.setdefault(producer, other.carrier[producer])
        if other.source is not None:
            if into.source is not None and into.source != other.source:
                raise LineageError(
                    f"inputs of node {node}",
                    f"{into.source_carrier} ingested from {into.source}, {other.source_carrier} from {other.source}",
                    "inputs from one dataset: re-run from ingest (`kedro run --pipelines=full`)")
            if into.source is None:
                into.source, into.source_carrier = other.source, other.source_carrier

    def _mixed(self, node: str, producer: str, first: tuple[str, str], second: tuple[str, str]) -> LineageError:
        # versions are timestamps; this run's outputs are the newest
        (older_input, older), (newer_input, newer) = sorted([first, second], key=lambda p: p[1].replace(THIS_RUN, "~"))
        # everything after the upstream node's stage, up to this node's, was built on the older run
        stages = self.stages
        after = stages.index(self.stage[producer]) + 1 if self.stage.get(producer) in stages else 0
        end = stages.index(self.stage[node]) + 1 if self.stage.get(node) in stages else len(stages)
        rebuild = stages[after:max(end, after + 1)]
        return LineageError(
            f"inputs of node {node}",
            f"two generations of {producer}: {older_input} was built from its run {older}, "
            f"{newer_input} from its run {newer}",
            f"inputs built from one run of each upstream node: rebuild {older_input} on the newer one with "
            f"`kedro run --pipelines={','.join(rebuild)}`, or choose matching versions with --load-versions "
            f"(each version folder's {SIDECAR} says what it was built from)")

    def check_source(self, source: str | None) -> None:
        """The ``dataset`` parameter of a run that does not ingest must name its inputs' dataset."""
        sources = {self.datasets[name].source for name in self.inputs if name in self.datasets and self.datasets[name].source}
        if source is not None and sources and source not in sources:
            raise LineageError("parameter dataset", source,
                               f"{sorted(sources)[0]}, the dataset this run's inputs were ingested from "
                               "(or re-run from ingest: `kedro run --pipelines=full`)")

    def record(self, name: str) -> None:
        """Write ``name``'s lineage beside its saved version, once."""
        dataset = versioned(self.catalog, name) if name in self.outputs and name not in self._written else None
        if dataset is None:
            return
        version = dataset.resolve_save_version()
        path = Location.of(dataset, dataset._get_versioned_path(version))
        if not path.exists():
            return
        lineage = self.datasets[name]
        built_from = {node: version if v == THIS_RUN else v for node, v in lineage.built_from.items()}
        path.sidecar().write(json.dumps({"dataset": name, "version": version, "produced_by": self.outputs[name],
                                         "source": lineage.source, "built_from": dict(sorted(built_from.items()))},
                                        indent=2))
        self._written.add(name)

    def record_all(self) -> None:
        """Record every output this run saved (worker processes of ParallelRunner may not have)."""
        for name in self.outputs:
            try:
                self.record(name)
            except (DatasetError, OSError) as error:  # a failing run: record what exists, never mask its error
                log.debug("no lineage recorded for %s: %s", name, error)


@dataclass(frozen=True)
class Location:
    """A file on a dataset's filesystem (local disk, ``s3://``, ``memory://``: whatever fsspec reads)."""

    fs: Any
    protocol: str
    path: PurePosixPath

    @classmethod
    def of(cls, dataset: AbstractVersionedDataset, path: Any) -> Location:
        fs = getattr(dataset, "_fs", None) or fsspec.filesystem("file")
        return cls(fs, getattr(dataset, "_protocol", "file") or "file", PurePosixPath(str(path)))

    def __str__(self) -> str:
        return get_filepath_str(self.path, self.protocol)

    def url(self) -> str:
        """The path as a user writes it (:func:`~glta_pipelines.core.files.user_url`)."""
        return user_url(self.protocol, str(self.path))

    def exists(self) -> bool:
        return bool(self.fs.exists(str(self)))

    def sidecar(self) -> Location:
        return Location(self.fs, self.protocol, self.path.parent / SIDECAR)

    def read_text(self) -> str:
        return self.fs.cat_file(str(self)).decode()

    def write(self, text: str) -> None:
        """Atomically on the local disk (a temporary file renamed); elsewhere in one write."""
        if self.protocol == "file":
            with atomic_path(str(self)) as tmp:
                tmp.write_text(text)
        else:
            self.fs.pipe_file(str(self), text.encode())


def read_lineage(path: Location, name: str, version: str, producer: str) -> Lineage:
    """A persisted dataset's lineage; a version saved before lineage was recorded knows only itself."""
    built_from, source = {producer: version}, None
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            built_from = {**stored["built_from"], stored["produced_by"]: version}
            source = stored.get("source")
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"file {path}", f"unreadable lineage ({type(error).__name__}: {error})",
                             f"the JSON written with that version: re-run the stage that writes {name}") from None
    else:
        log.warning("%s version %s has no %s (saved before lineage was recorded): its upstream is not checked",
                    name, version, SIDECAR)
    return Lineage(built_from, dict.fromkeys(built_from, name), source, name if source else None)


def versioned(catalog: Any, name: str) -> AbstractVersionedDataset | None:
    """The versioned dataset behind ``name``; None for parameters, memory and unversioned datasets."""
    if name.startswith("params:") or name == "parameters" or name not in catalog:
        return None
    dataset = catalog[name]
    return dataset if isinstance(dataset, AbstractVersionedDataset) and dataset._version else None
