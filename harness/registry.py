"""One generic registry for the four kinds of named component.

Built-ins are listed as lazy ``name -> "module:Class"`` strings (nothing else: the class's decorator gives its
name, checked against the table at load, and the class its description) so that ``harness list`` and ``--help`` never
import torch; modules register with a decorator; code outside the repository registers through the
Python entry-point groups ``echobench.generators``, ``echobench.tasks``, ``echobench.features`` and
``echobench.datasets``. Entry points are loaded lazily, on first lookup, and a broken plug-in is recorded
(and shown by ``harness list``) instead of crashing other commands.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from harness.errors import UnknownNameError, UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Entry:
    """One registered name: where it comes from and how to load it."""

    name: str
    target: str | None  # "module:attr" for lazy entries, None once the object is known
    origin: str  # "built-in", "package <dist>", "file", "runtime"
    description: str = ""
    obj: Any = None
    error: str | None = None  # why loading failed (broken plug-in)


def _load_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """A name → component mapping for one kind (``generator``, ``task``, ``feature``, ``dataset``)."""

    def __init__(self, kind: str, group: str | None = None, builtins: dict[str, str] | None = None):
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = group is None
        for name, target in (builtins or {}).items():  # name -> "module:Class"; the class says the rest
            self._entries[name] = Entry(name, target, "built-in")

    # registration -----------------------------------------------------------------------------
    def register(self, name: str, *, description: str | None = None) -> Callable[[T], T]:
        """Class decorator: ``@generators.register("real")``."""
        _check_name(name)

        def deco(obj: T) -> T:
            entry = self._entries.get(name)
            desc = description or _first_line(obj)
            if entry is None:
                self._entries[name] = Entry(name, None, "runtime", desc, obj)
            elif entry.obj is not None and entry.obj is not obj:
                raise UsageError(f"{self.kind} {name!r} is registered twice ({entry.obj!r} and {obj!r})")
            else:  # the lazy built-in being imported
                entry.obj, entry.description = obj, entry.description or desc
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def add(self, name: str, target: str, *, origin: str = "runtime", description: str = "") -> None:
        """Register a lazy ``"module:Class"`` target under ``name``."""
        _check_name(name)
        self._entries[name] = Entry(name, target, origin, description)

    # lookup ----------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.name in self._entries and self._entries[ep.name].origin == "built-in":
                log.warning("plug-in %s shadows the built-in %s %r; ignored", ep.value, self.kind, ep.name)
                continue
            dist = getattr(ep, "dist", None)
            origin = f"package {dist.name}" if dist is not None else "package"
            self._entries[ep.name] = Entry(ep.name, ep.value, origin, "")

    def _resolve(self, entry: Entry) -> Any:
        if entry.obj is None and entry.error is None:
            try:
                entry.obj = _load_target(entry.target or "")
            except Exception as exc:  # a broken plug-in must not break other commands
                entry.error = f"{type(exc).__name__}: {exc}"
                log.debug("failed to load %s %r", self.kind, entry.name, exc_info=True)
            if entry.obj is not None and isinstance(entry.obj, type) and not getattr(entry.obj, "name", None):
                entry.obj.name = entry.name  # a plug-in class that leaves `name` empty is known by its entry point
            registered = getattr(entry.obj, "name", entry.name) if entry.obj is not None else entry.name
            if registered != entry.name:  # the table and the class's decorator disagree: one fact, two places
                entry.obj, entry.error = None, f"{entry.target} is registered as {registered!r}, not {entry.name!r}"
            if entry.obj is not None and not entry.description:
                entry.description = _first_line(entry.obj)
        if entry.error is not None:
            raise UsageError(f"{self.kind} {entry.name!r} ({entry.origin}, {entry.target}) failed to load: {entry.error}")
        return entry.obj

    def get(self, name: str) -> T:
        """Return the component registered as ``name``; unknown names get "did you mean" help.

        ``name`` may also be ``path/to/file.py:Class`` or ``package.module:Class`` for a component that is
        not registered (quick experiments without packaging).
        """
        self._load_plugins()
        if name in self._entries:
            return self._resolve(self._entries[name])
        if ":" in name:
            return self._load_path_target(name)
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._entries))}."
        )

    def _load_path_target(self, spec: str) -> Any:
        path, _, attr = spec.rpartition(":")
        if path.endswith(".py"):
            import importlib.util
            from pathlib import Path

            file = Path(path)
            if not file.is_file():
                raise UsageError(f"{self.kind} {spec!r}: file {path} does not exist")
            mod_name = f"_echobench_plugin_{file.stem}"
            module_spec = importlib.util.spec_from_file_location(mod_name, file)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            import sys

            sys.modules[mod_name] = module
            try:
                module_spec.loader.exec_module(module)  # type: ignore[union-attr]
                obj = getattr(module, attr)
            except Exception as exc:
                raise UsageError(f"{self.kind} {spec!r} failed to load: {type(exc).__name__}: {exc}") from exc
            origin = "file"
        else:
            try:
                obj = _load_target(spec)
            except Exception as exc:
                raise UsageError(f"{self.kind} {spec!r} failed to load: {type(exc).__name__}: {exc}") from exc
            origin = "module"
        if not isinstance(obj, type):  # e.g. -g os:system: only a class can be a component
            raise UsageError(f"{self.kind} {spec!r} is a {type(obj).__name__}, not a class; give path/file.py:Class or "
                             "package.module:Class")
        self._entries[spec] = Entry(spec, spec, origin, _first_line(obj), obj)
        return obj

    def entries(self, *, load: bool = False) -> list[Entry]:
        """All entries sorted by name; with ``load=True`` each is imported (errors recorded, not raised)."""
        self._load_plugins()
        out = sorted(self._entries.values(), key=lambda e: e.name)
        if load:
            for entry in out:
                try:
                    self._resolve(entry)
                except UsageError:
                    pass
        return out

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name):
        raise UsageError(f"invalid component name {name!r}")


def _first_line(obj: Any) -> str:
    desc = getattr(obj, "description", None)
    if isinstance(desc, str) and desc:
        return desc
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


# The four registries with their lazy built-ins. -----------------------------------------------

generators: Registry = Registry(
    "generator",
    "echobench.generators",
    {
        "real": "generators.real:RealGenerator",
        "labelmap": "generators.labelmap:LabelMapGenerator",
        "images": "generators.images:ImagesGenerator",
        "cyclegan": "generators.cyclegan:CycleGANGenerator",
        "cut": "generators.cut:CUTGenerator",
        "fastcut": "generators.cut:FastCUTGenerator",
        "sd-lora": "generators.sd_lora.adapter:SDLoRAGenerator",
    },
)

tasks: Registry = Registry(
    "task",
    "echobench.tasks",
    {
        "fid": "tasks.fid:FIDTask",
        "diversity": "tasks.diversity:DiversityTask",
        "color-shift": "tasks.color_shift:ColorShiftTask",
        "memorization": "tasks.memorization:MemorizationTask",
        "cmmd": "tasks.cmmd:CMMDTask",
        "seg-utility": "tasks.seg_utility:SegUtilityTask",
        "anatomy-faithfulness": "tasks.anatomy_faithfulness:AnatomyFaithfulnessTask",
        "condition-fidelity": "tasks.condition_fidelity:ConditionFidelityTask",
    },
)

features: Registry = Registry(
    "feature extractor",
    "echobench.features",
    {
        "inception": "harness.features.inception:InceptionExtractor",
        "radiomics": "harness.features.radiomics:RadiomicsExtractor",
        "random-inception": "harness.features.inception:RandomInceptionExtractor",
        "dinov2": "harness.features.dinov2:DINOv2Extractor",
        "dinov2-base": "harness.features.dinov2:DINOv2BaseExtractor",
        "random-dinov2": "harness.features.dinov2:RandomDINOv2Extractor",
        "clip": "harness.features.clip:CLIPExtractor",
        "random-clip": "harness.features.clip:RandomCLIPExtractor",
    },
)

datasets: Registry = Registry(
    "data source",
    "echobench.datasets",
    {
        "phantom": "harness.data.phantom:PhantomSource",
        "folder": "harness.data.folder:FolderSource",
        "echonet": "harness.data.echonet:EchoNetSource",
        "camus": "harness.data.camus:CamusSource",
    },
)

REGISTRIES: dict[str, Registry] = {
    "generators": generators,
    "tasks": tasks,
    "features": features,
    "datasets": datasets,
}
