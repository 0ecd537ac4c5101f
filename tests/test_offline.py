"""Offline mode through huggingface_hub's own switch, and every imported package declared."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import socket
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
from conftest import OFFLINE_VARIABLES

from hf_spam.hub import OfflineError, ensure_reachable, offline_reason

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_network(monkeypatch, online):
    """Offline mode must decide before any connection: trying one fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_huggingface_hub_offline_switch_is_honoured(no_network, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # set by code, not the env
    assert huggingface_hub.constants.is_offline_mode()
    with pytest.raises(OfflineError, match=r"model 'x'.*offline mode is on.*--weights random"):
        ensure_reachable("model 'x'", alternatives="Use --weights random.")


@pytest.mark.parametrize("variable", OFFLINE_VARIABLES)
def test_offline_variables_set_after_import_are_honoured(variable, no_network, monkeypatch):
    monkeypatch.setenv(variable, "yes")
    with pytest.raises(OfflineError, match=f"offline mode is on \\({variable}=yes is set\\)"):
        ensure_reachable("model 'x'")  # the message names the variable that is set, not another one
    assert offline_reason() == f"{variable}=yes is set"


def _imported_packages() -> set[str]:
    names = set()
    for path in (REPO / "hf_spam").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "hf_spam"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_a_declared_dependency():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # the extras: gradio (the app), onnx/onnxruntime (the ONNX export and backend), each imported lazily
    extras = project["optional-dependencies"]
    declared = project["dependencies"] + extras["app"] + extras["onnx"]
    declared = {_normalise(re.split(r"[<>=!~ ;\[]", spec, maxsplit=1)[0]) for spec in declared}
    distributions = importlib.metadata.packages_distributions()
    imported = _imported_packages()
    assert "huggingface_hub" in imported
    undeclared = {
        name: distributions.get(name)
        for name in imported
        if not {_normalise(d) for d in distributions.get(name, [name])} & declared
    }
    assert not undeclared, f"imported by hf_spam but not in pyproject's dependencies: {undeclared}"
