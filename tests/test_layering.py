"""The package's layering, read from the source: which modules import which (imports
inside functions count too), so a wrong-way import fails here rather than in review."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "wavegan_dist"


def import_graph(package: pathlib.Path) -> dict[str, set[str]]:
    """{module: modules of the same package it imports}, e.g. "wavegan_dist.models.spec"."""

    def name(path: pathlib.Path) -> str:
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name(p): p for p in package.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = {m for m in found if m in files and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others."""
    order, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return found


def wrong_way(
    graph: dict[str, set[str]], lower: tuple[str, ...], upper: tuple[str, ...]
) -> list[str]:
    """ "a -> b" for every module under a `lower` prefix importing one under an `upper`."""

    def under(module, prefixes):
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        if under(a, lower)
        for b in targets
        if under(b, upper)
    )


GRAPH = import_graph(PACKAGE)
P = "wavegan_dist."


def test_no_modules_import_each_other():
    assert cycles(GRAPH) == []


def test_inference_and_the_commands_that_read_runs_do_not_import_training():
    readers = (P + "inference", P + "generate", P + "evaluate", P + "media", P + "run_folder")
    assert wrong_way(GRAPH, readers, (P + "training",)) == []


def test_training_media_and_run_folder_do_not_import_inference():
    assert (
        wrong_way(GRAPH, (P + "training", P + "media", P + "run_folder"), (P + "inference",)) == []
    )


def test_the_model_spec_is_a_leaf_and_the_registry_imports_no_network():
    assert not {m for m in GRAPH[P + "models.spec"] if m.startswith(P + "models")}
    networks = {P + "models.wavegan", P + "models.seed2d", P + "models.build"}
    assert not GRAPH[P + "models.registry"] & networks


def test_a_config_is_made_and_checked_without_tensorflow_or_deeplake():
    code = (
        "import sys; from wavegan_dist.config import make_config; "
        "make_config('tiny', model='seed2d', condition='pitch').validated(); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'deeplake') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "extra, expect",
    [
        (
            {"training/loop.py": "", "inference/restore.py": "from pkg.training import loop\n"},
            ["pkg.inference.restore -> pkg.training", "pkg.inference.restore -> pkg.training.loop"],
        ),
        (
            {
                "training/loop.py": "def f():\n    import pkg.inference.restore\n",
                "inference/restore.py": "",
            },
            [],
        ),
    ],
)
def test_the_checks_see_wrong_way_and_function_level_imports(tmp_path, extra, expect):
    package = tmp_path / "pkg"
    for path, text in {
        "__init__.py": "",
        "training/__init__.py": "",
        "inference/__init__.py": "",
        **extra,
    }.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    graph = import_graph(package)
    assert wrong_way(graph, ("pkg.inference",), ("pkg.training",)) == expect
    assert wrong_way(graph, ("pkg.training",), ("pkg.inference",)) == (
        [] if expect else ["pkg.training.loop -> pkg.inference.restore"]
    )


def test_the_cycle_check_sees_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.c import x\n")
    (package / "c.py").write_text("import pkg.a\nx = 1\n")
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c"]]
