"""The two layers: the array layer works without FiftyOne, no module imports another in a
circle or reaches into another's private names, and the plugin's form modules stay light."""

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

PACKAGE = REPO / "fiftyone_intrinsic"


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path):
    """``(imported module, imported names)`` of every import in the file, at any depth
    (imports inside functions count: they run too)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = tuple(alias.name for alias in node.names)
            yield target, names


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _graph():
    """Module → the package modules it imports (``from pkg import mod`` counts as mod)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target, names in _imports(path):
            if target is None or not target.startswith("fiftyone_intrinsic"):
                continue
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            edges.update(submodules or ([target] if target in modules else []))
        edges.discard(name)
        graph[name] = edges
    return graph


def test_the_graph_sees_the_imports():
    graph = _graph()
    assert "fiftyone_intrinsic.core.neighbors" in graph["fiftyone_intrinsic.core.dimension"]
    assert "fiftyone_intrinsic.datasets.runs" in graph["fiftyone_intrinsic.datasets.storage"]
    assert "fiftyone_intrinsic.core.robustness" in graph["fiftyone_intrinsic.datasets.robustness"]


def test_no_module_imports_another_in_a_circle():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                cycles.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other, stack + [other])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_array_layer_never_imports_the_fiftyone_layer_or_fiftyone():
    for name, path in _modules().items():
        if not name.startswith("fiftyone_intrinsic.core"):
            continue
        for target, _ in _imports(path):
            assert not (target or "").startswith(("fiftyone_intrinsic.datasets", "fiftyone.")), (name, target)
            assert target != "fiftyone", name


def test_no_module_imports_or_reads_a_private_name_of_another():
    modules = _modules()
    offences = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for target, names in _imports(path):
            if target and target.startswith("fiftyone_intrinsic"):
                offences += [(name, f"{target}.{n}") for n in names if n.startswith("_") and n != "__version__"]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is None:
                aliases.update({a.asname or a.name: a.name for a in node.names})
            if isinstance(node, ast.ImportFrom) and node.module and node.level:
                aliases.update({a.asname: a.name for a in node.names if a.asname})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")):
                offences.append((name, f"{node.value.id}.{node.attr}"))
    for folder in ("operators", "plugin"):
        for path in (REPO / folder).glob("*.py"):
            for target, names in _imports(path):
                if target and target.startswith("fiftyone_intrinsic"):
                    offences += [(path.name, f"{target}.{n}") for n in names if n.startswith("_") and n != "__version__"]
                if target and not target.startswith("fiftyone") and names:
                    offences += [(path.name, f"{target}.{n}") for n in names if n.startswith("_")]
    assert offences == []


def _run(code: str, env=None):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
        env=env or os.environ.copy(),
    )


def test_the_array_layer_works_where_fiftyone_cannot_be_imported(tmp_path):
    broken = tmp_path / "fiftyone"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('FiftyOne is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    result = _run(
        """
        import sys
        try:
            import fiftyone
        except ImportError:
            pass
        else:
            raise SystemExit("the broken fiftyone imported")
        import numpy as np, torch
        import fiftyone_intrinsic.core as core
        X = np.random.default_rng(0).uniform(size=(300, 2)) @ np.random.default_rng(1).normal(size=(2, 10))
        d = core.intrinsic_dimension(X, device="cpu").dimension
        kf = core.label_sharpness(np.array([[0.0], [2.0], [5.0]]), ["a", "b", "b"], device="cpu").k_f
        nn = core.nearest_neighbors(np.array([[0.0], [1.0], [3.0]]), 1, device="cpu")
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        report = core.evaluate_robustness(torch.rand(6, 1, 8, 8), model, [0, 1] * 3,
                                          settings=core.RobustnessSettings(attacks=("fgsm",), minimal=False, device="cpu"))
        loaded = [m for m in sys.modules if m == "fiftyone" or m.startswith("fiftyone.")]
        print(round(d), kf, nn.indices[:, 0].tolist(), 0 <= report.attacks.clean_accuracy <= 1, loaded)
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "0.5", "[1,", "0,", "1]", "True", "[]"]


def test_form_modules_load_without_torch():
    """The plugin reads the registries and settings on every form refresh; torch must not
    be imported for that."""
    result = _run(
        """
        import sys
        import fiftyone_intrinsic
        import fiftyone_intrinsic.core.settings, fiftyone_intrinsic.core.estimators
        import fiftyone_intrinsic.core.attacks, fiftyone_intrinsic.datasets.settings
        import fiftyone_intrinsic.datasets.schema
        print("torch" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["intrinsic_dimension", "label_sharpness", "nearest_neighbors"])
def test_core_exposes_the_array_functions(name):
    import fiftyone_intrinsic.core as core

    assert callable(getattr(core, name))
    assert name in dir(core)


@pytest.mark.parametrize(
    "name",
    [
        "intrinsic_dimension", "label_sharpness", "compute_intrinsic_dimension", "compute_label_sharpness",
        "compute_representation_dimension", "evaluate_robustness", "fit_scaling_law", "list_intrinsic_runs",
        "load_intrinsic_results", "get_intrinsic_run_info", "delete_intrinsic_run", "load_sharpest_pairs_view",
        "load_model", "ModelSource", "FeatureSettings", "Preprocessing",
    ],
)
def test_public_names_stay_at_the_top_level(name):
    import fiftyone_intrinsic as fi

    assert getattr(fi, name) is not None and name in fi.__all__
