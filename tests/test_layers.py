"""The package's layers: a core that imports no TensorFlow, tfds or matplotlib, and no import cycle anywhere.

Both facts are computed, not listed: the core modules are imported in a fresh
interpreter and `sys.modules` is read; the import graph is parsed from every
module's source, function-level imports included.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "alexnet_jax")
CORE = ("lrn", "models", "metrics", "optim", "sharding", "steps")
HEAVY = ("tensorflow", "tensorflow_datasets", "matplotlib")


def test_the_core_imports_no_tensorflow_tfds_or_matplotlib():
    imports = "; ".join(f"import alexnet_jax.{name}" for name in CORE)
    probe = f"import sys; {imports}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    environment = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
    # The control: the training loop reads data through tf.data, so importing it must load TensorFlow,
    # but not Keras (installed, as tensorflow-cpu requires), which TensorFlow would import at start;
    # tf.keras still loads it when asked.
    probe = (
        "import importlib.util, sys, alexnet_jax.train; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, "
        "importlib.util.find_spec('keras') is not None); "
        "import tensorflow as tf; layer = tf.keras.layers.Dense(2); "
        "print('keras' in sys.modules, tuple(layer(tf.ones((1, 3))).shape))"
    )
    control = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert control.stdout.strip().splitlines()[-2:] == ["True False True", "True (1, 2)"], (
        control.stdout + control.stderr[-3000:]
    )


def package_modules() -> dict[str, str]:
    """'alexnet_jax.x.y' -> path, for every module of the package."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, file), ROOT)[: -len(".py")].split(
                    os.sep
                )
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(
                    folder, file
                )
    return modules


def imported_modules(path: str, known) -> set[str]:
    """The package modules that a file imports anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "grey"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "grey":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "black"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    modules = package_modules()
    assert {"alexnet_jax.train", "alexnet_jax.steps", "alexnet_jax.datasets.cifar10"} <= set(
        modules
    )
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph))


@pytest.mark.parametrize(
    "graph, expected",
    [
        (
            {"a": {"b"}, "b": {"c"}, "c": {"a"}},
            ["a", "b", "c", "a"],
        ),  # the control: a cycle must be found
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),  # a diamond is no cycle
    ],
)
def test_the_cycle_search_itself(graph, expected):
    assert import_cycle(graph) == expected


@pytest.fixture(scope="module")
def module_resource():
    return object()


def test_tests_sharing_a_module_fixture_run_in_one_xdist_group(request, module_resource):
    """`--dist loadgroup` (pyproject.toml) with the groups of tests/conftest.py: xdist appends the
    group to the test's id, and sends a group to one worker. With pytest 9.2 it appended nothing."""
    if not request.config.getoption("loadgroup", default=False):
        pytest.skip("not under pytest-xdist's --dist loadgroup (the README's command uses it)")
    assert request.node.nodeid.endswith("@test_layers:module_resource"), request.node.nodeid
