"""The package's layers: a core that imports no TensorFlow, tfds or matplotlib, and no import cycle anywhere.

Both facts are computed, not listed: the core modules are imported in a fresh
interpreter and `sys.modules` is read; the import graph is parsed from every
module's source, function-level imports included.
"""

import ast
import importlib.metadata
import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "alexnet_jax")
CORE = ("lrn", "models", "metrics", "optim", "sharding", "steps", "synthetic")
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


def import_names(path: str) -> set[str]:
    """Every name a file imports anywhere in it (top level or inside functions), `a.b` and `a.b.c`."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imported_modules(path: str, known) -> set[str]:
    """The package modules that a file imports anywhere in it."""
    return import_names(path) & set(known)


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


def requirements(file: str) -> dict[str, Requirement]:
    """The requirements that `file` lists itself (not those of files it includes with -r), by name."""
    with open(os.path.join(ROOT, file)) as lines:
        listed = [line.split("#")[0].strip() for line in lines]
    found = [Requirement(line) for line in listed if line and not line.startswith("-")]
    return {canonicalize_name(requirement.name): requirement for requirement in found}


def core_distributions() -> set[str]:
    """The distributions whose modules the core and the package modules it imports import."""
    modules = package_modules()
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
    core, todo = set(), [f"alexnet_jax.{name}" for name in CORE]
    while todo:  # the core and the package modules it imports, however indirectly
        if (name := todo.pop()) not in core:
            core.add(name)
            todo.extend(graph[name])
    outside = (
        {name.split(".")[0] for module in core for name in import_names(modules[module])}
        - set(sys.stdlib_module_names)
        - {"alexnet_jax", "__future__"}
    )
    providers = importlib.metadata.packages_distributions()
    return {canonicalize_name(dist) for top in outside for dist in providers[top]}


def test_requirements_admit_the_accelerator_image_and_hold_for_this_install():
    runtime = requirements("requirements.txt")
    # What an accelerator image without TensorFlow needs for the core; the comment there says so.
    assert core_distributions() == {"jax", "flax", "optax", "numpy"} <= set(runtime)
    # The lent H200 image: jax 0.11.2 (with its CUDA 13 plugin); this machine: jax 0.10.2.
    assert runtime["jax"].specifier.contains("0.11.2") and runtime["jax"].specifier.contains(
        "0.10.2"
    )
    assert not runtime["jax"].specifier.contains("0.10.1")
    # The extras the README's GPU and TPU lines install exist (the plugins cannot be fetched here).
    assert {"cuda12", "cuda13", "tpu"} <= set(
        importlib.metadata.metadata("jax").get_all("Provides-Extra")
    )
    listed = {**runtime, **requirements("requirements-test.txt")}
    assert {"jax", "tensorflow-cpu", "torch", "pytest"} <= set(listed)
    for name, requirement in listed.items():
        installed = importlib.metadata.version(name)
        assert requirement.specifier.contains(installed, prereleases=True), (name, installed)


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
