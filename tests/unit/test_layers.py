"""The package's wings and layers: imports point down, or sideways within a wing.

cli, demo                      compose the wings (top)
server.app, server.run         wire the server
server.http                    stream, API, pages, auth   | executor (its own wing)
server.keys                    the application's keys     |
server.live                    bridge, broker, fan-out    |
db                             the database port (the only package with the driver)
settings, logconfig, ...       shared by all (bottom)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "zapjobs_sse"

# (prefix, layer): the longest matching prefix names a module's layer.
LAYERS = {
    "zapjobs_sse.settings": 0,
    "zapjobs_sse.logconfig": 0,
    "zapjobs_sse.configdoc": 0,
    "zapjobs_sse.assets": 0,
    "zapjobs_sse.signals": 0,
    "zapjobs_sse.wakeup": 0,
    "zapjobs_sse.db": 1,
    "zapjobs_sse.server.live": 2,
    "zapjobs_sse.executor": 2,
    "zapjobs_sse.server.keys": 3,
    "zapjobs_sse.server.http": 4,
    "zapjobs_sse.server": 5,
    "zapjobs_sse.cli": 7,
    "zapjobs_sse.demo": 6,
    "zapjobs_sse.__main__": 8,
    "zapjobs_sse": 8,
}
WINGS = ("zapjobs_sse.server", "zapjobs_sse.executor")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _prefix(module: str) -> str:
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def _wing(module: str) -> str | None:
    return next((w for w in WINGS if module == w or module.startswith(w + ".")), None)


def _imports(path: Path) -> list[str]:
    """Every zapjobs_sse module the file imports, at the top or inside functions."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.extend(
                n
                if (PACKAGE.parent / n.replace(".", "/")).exists()
                or (PACKAGE.parent / (n.replace(".", "/") + ".py")).exists()
                else target
                for n in names
            )
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name == "zapjobs_sse" or name.startswith("zapjobs_sse.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


def violations(importer: str, imported: list[str]) -> list[str]:
    """The imports of `importer` that point up, or into the other wing."""
    wrong = []
    for name in imported:
        if name == importer or name.startswith(importer + "."):
            continue  # a package's own modules
        own, other = _wing(importer), _wing(name)
        crosses = own is not None and other is not None and own != other
        if crosses or LAYERS[_prefix(name)] > LAYERS[_prefix(importer)]:
            wrong.append(f"{importer} imports {name}")
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda path: _name(path))
def test_imports_point_down_or_sideways_within_a_wing(path: Path) -> None:
    assert violations(_name(path), _imports(path)) == []


def test_the_rule_refuses_upward_and_cross_wing_imports() -> None:
    assert violations("zapjobs_sse.server.live.broker", ["zapjobs_sse.server.http.pages"])
    assert violations("zapjobs_sse.server.http.stream", ["zapjobs_sse.server.app"])
    assert violations("zapjobs_sse.db.database", ["zapjobs_sse.server.live.wire"])
    assert violations("zapjobs_sse.executor.worker", ["zapjobs_sse.server.live.wire"])
    assert violations("zapjobs_sse.server.live.bridge", ["zapjobs_sse.executor.registry"])
    assert not violations("zapjobs_sse.server.http.stream", ["zapjobs_sse.server.live.broker"])
    assert violations("zapjobs_sse.server.live.stats", ["zapjobs_sse.server.keys"])
    assert not violations("zapjobs_sse.server.live.bridge", ["zapjobs_sse.server.live.broker"])
    assert not violations("zapjobs_sse.configdoc", ["zapjobs_sse.settings"])


def _loaded_by(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_server_never_loads_the_executor() -> None:
    loaded = _loaded_by("import zapjobs_sse.server.run, zapjobs_sse.server.app")
    assert "zapjobs_sse.server.app" in loaded
    assert not {m for m in loaded if m.startswith("zapjobs_sse.executor.")} - {
        "zapjobs_sse.executor.commands"
    }
    assert "zapjobs_sse.demo" not in loaded


def test_the_worker_command_loads_neither_the_web_stack_nor_the_server() -> None:
    loaded = _loaded_by(
        "import contextlib, io, zapjobs_sse.cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    zapjobs_sse.cli.main(['worker', '--help'])"
    )
    assert "zapjobs_sse.cli" in loaded
    assert not {"jinja2", "aiohttp_jinja2", "aiohttp.web"} & loaded
    assert not {m for m in loaded if m.startswith("zapjobs_sse.server")}


def test_the_command_line_loads_no_executor_module_until_a_worker_runs() -> None:
    loaded = _loaded_by("import zapjobs_sse.cli\nzapjobs_sse.cli.build_parser()")
    assert not {"zapjobs_sse.executor.registry", "zapjobs_sse.executor.worker"} & loaded
