from __future__ import annotations

import sys
import types

import pytest

from harness.errors import UnknownNameError, UsageError
from harness.registry import Registry, generators


def test_lazy_builtin_is_not_imported_until_lookup():
    reg = Registry("thing", None, {"x": "tests_fake_module_xyz:Thing"})
    assert "tests_fake_module_xyz" not in sys.modules
    entry = reg.entries()[0]
    assert (entry.name, entry.origin, entry.target) == ("x", "built-in", "tests_fake_module_xyz:Thing")


def test_builtin_name_and_description_come_from_the_class(tmp_path, monkeypatch):
    """The table holds name -> "module:Class" only; the class's decorator name is checked against it at load."""
    (tmp_path / "tests_fake_plugin_mod.py").write_text(
        "class G:\n    name = 'right-name'  # what its decorator would set\n    description = 'from the class'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing", None, {"right-name": "tests_fake_plugin_mod:G", "wrong-name": "tests_fake_plugin_mod:G"})
    entries = {e.name: e for e in reg.entries(load=True)}
    assert entries["right-name"].description == "from the class" and entries["right-name"].error is None
    assert "registered as 'right-name', not 'wrong-name'" in entries["wrong-name"].error
    from harness import registry

    for r in registry.REGISTRIES.values():  # every built-in: its class agrees with the table and describes itself
        for e in r.entries(load=True):
            if e.origin == "built-in":
                assert e.error is None and e.obj.name == e.name and e.description, e


def test_decorator_registration_and_lookup():
    reg = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        """First line of doc.

        More."""

    assert reg.get("alpha") is Alpha
    assert Alpha.name == "alpha"
    assert reg.entries()[0].description == "First line of doc."


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownNameError) as info:
        generators.get("lablemap")
    msg = str(info.value)
    assert "Did you mean 'labelmap'" in msg and "Available:" in msg


def test_broken_target_is_reported_not_raised_in_listing():
    reg = Registry("thing", None, {"bad": "no_such_module_abc:X", "ok": "json:dumps"})
    entries = {e.name: e for e in reg.entries(load=True)}
    assert entries["bad"].error and "ModuleNotFoundError" in entries["bad"].error
    assert entries["ok"].error is None
    with pytest.raises(UsageError, match="failed to load"):
        reg.get("bad")


def test_duplicate_registration_refused():
    reg = Registry("thing")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(UsageError, match="registered twice"):
        reg.register("a")(type("B", (), {}))


def test_file_path_target(tmp_path):
    f = tmp_path / "myplugin.py"
    f.write_text("class Gen:\n    '''My generator.'''\n")
    reg = Registry("thing")
    obj = reg.get(f"{f}:Gen")
    assert obj.__name__ == "Gen"
    with pytest.raises(UsageError, match="does not exist"):
        reg.get(f"{tmp_path / 'nope.py'}:Gen")


def test_entry_point_plugins_are_discovered(monkeypatch):
    mod = types.ModuleType("fake_plugin_mod")

    class PluginGen:
        """A plug-in generator."""

    mod.PluginGen = PluginGen
    monkeypatch.setitem(sys.modules, "fake_plugin_mod", mod)
    import importlib.metadata as md

    ep = md.EntryPoint(name="plug", value="fake_plugin_mod:PluginGen", group="echobench.test")
    broken = md.EntryPoint(name="broken", value="fake_plugin_missing:X", group="echobench.test")
    monkeypatch.setattr(md, "entry_points", lambda group=None: [ep, broken] if group == "echobench.test" else [])
    reg = Registry("thing", "echobench.test")
    assert reg.get("plug") is PluginGen
    entries = {e.name: e for e in reg.entries(load=True)}
    assert entries["broken"].error is not None  # broken plug-in recorded ...
    assert reg.get("plug") is PluginGen  # ... and does not break the others
