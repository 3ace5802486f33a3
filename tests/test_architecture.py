"""The package's shape: layers that only point down, no import cycles, small functions."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "stochw2v"
# audio -> data -> compute -> model -> formats -> train | runtime -> evaluate -> serve -> applications -> cli;
# errors/files below all
LAYERS = {"errors": 0, "files": 0, "audio": 1, "data": 2, "compute": 3, "model": 4, "formats": 5, "train": 6,
          "runtime": 6, "evaluate": 7, "serve": 8, "demo": 9, "experiment": 9, "cli": 10}
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
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue  # a type-only import: no dependency at run time
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


# the network itself: every module of model/ (formats, compute budgets and training live beside it)
NETWORK = sorted(name for name in modules() if name.startswith("stochw2v.model"))


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for target, _, _ in graph.get(node, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_network_is_the_model_package_only():
    network = ("activations", "config", "linear", "pooling", "relative_position", "transformer", "feature_encoder",
               "inputs", "encoder", "ctc")
    assert set(NETWORK) == {"stochw2v.model"} | {f"stochw2v.model.{name}" for name in network}


@pytest.mark.parametrize("module", NETWORK)
def test_the_network_imports_no_format_budget_or_training_module(graph, module):
    reached = reachable(graph, module)
    forbidden = [name for name in reached if name.startswith(("stochw2v.formats", "stochw2v.train"))
                 or name == "stochw2v.compute.budget"]
    assert not forbidden, f"{module} reaches {sorted(forbidden)}"


@pytest.mark.parametrize("module", ["stochw2v.formats.load", "stochw2v.formats.model_folder", "stochw2v.formats.hf",
                                    "stochw2v.formats.fairseq", "stochw2v.formats.onnx"])
def test_loading_a_model_for_inference_imports_nothing_from_train(graph, module):
    reached = reachable(graph, module)
    assert not any(name.startswith("stochw2v.train") for name in reached), f"{module} reaches train/"


def test_every_package_has_an_init():
    missing = [str(folder.relative_to(SRC)) for folder in SRC.iterdir()
               if folder.is_dir() and any(folder.glob("*.py")) and not (folder / "__init__.py").exists()]
    assert not missing, missing
