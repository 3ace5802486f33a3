"""The package's shape: layers that only point down, no import cycles, small functions."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "stochw2v"
# audio -> data -> model -> train -> evaluate -> serve -> entry points -> cli; errors/files below all
LAYERS = {"errors": 0, "files": 0, "audio": 1, "data": 2, "model": 3, "train": 4, "evaluate": 5, "serve": 6,
          "sources": 7, "demo": 7, "experiment": 7, "cli": 8}
LONGEST_FUNCTION = 60


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function) for every import of a stochw2v module."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets = []
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in child.names] + [base]
            elif isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            for target in targets:
                while target and target not in known:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                if target and target != name and target.startswith("stochw2v"):
                    found.append((target, child.lineno, in_function))
                    break
            visit(child, nested)

    visit(tree, False)
    return found


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


@pytest.fixture(scope="module")
def graph():
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_no_import_cycles(graph):
    edges = {name: {t for t, _, _ in targets if not (name.startswith(t + ".") or t == "stochw2v")}
             for name, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [node])


def test_layers_only_import_downwards(graph):
    upward = []
    for name, targets in graph.items():
        mine = layer(name)
        for target, line, _ in targets:
            theirs = layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{name}:{line} imports {target}")
    assert not upward, upward


def test_no_package_imports_inside_functions(graph):
    hidden = [f"{name}:{line} imports {target}" for name, targets in graph.items() for target, line, inside in targets
              if inside]
    assert not hidden, hidden


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


# the network itself: what runs a forward pass (formats, budgets and training pieces live beside it)
NETWORK = ["stochw2v.model." + name for name in ("activations", "compression", "config", "pooling", "transformer",
                                                  "feature_encoder", "inputs", "encoder", "ctc", "macs")]


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for target, _, _ in graph.get(node, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("module", NETWORK)
def test_the_network_imports_no_budget_or_training_module(graph, module):
    reached = reachable(graph, module)
    assert "stochw2v.model.budget" not in reached, f"{module} reaches the budget module"
    assert not any(name.startswith("stochw2v.train") for name in reached), f"{module} reaches train/"


def test_loading_a_model_for_inference_imports_nothing_from_train(graph):
    reached = reachable(graph, "stochw2v.model.loading")
    assert not any(name.startswith("stochw2v.train") for name in reached)
