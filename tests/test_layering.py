"""The package's import graph: one-way arrows, lower layers never importing higher ones, no cycle.

Walks every module of hf_linear with `ast` (imports at module level and inside functions alike;
`if TYPE_CHECKING:` imports name types only and are left out), and checks it against the
layers below: a module may import its own layer and the layers under it. A new module must be
placed in a layer here, which is the point: where it sits is a decision.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import hf_linear

PACKAGE = Path(hf_linear.__file__).parent

# lowest first; a name is a top-level module or subpackage of hf_linear
LAYERS = [
    # the code that travels inside checkpoints: imports only its own files (trust_remote_code)
    ("configuration_hf_linear", "masked_mixing", "modeling_hf_linear"),
    ("paper", "omp_policy", "atomic", "output_dirs", "dotted_keys", "resources", "runtime", "run_files", "provenance"),
    ("__init__", "model_types", "checkpoints", "peft_support", "lora", "model_surgery"),
    ("data",),
    ("analysis",),
    ("evaluation",),
    ("hub", "convert_authors"),
    ("training",),
    ("studies",),
    ("demo",),
    ("cli",),
]
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("hf_linear", *path.relative_to(PACKAGE).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The hf_linear modules `module` imports, without its own ancestors (importing a submodule
    always runs its packages first: that is no arrow of the code's)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()

    def visit(node):
        if is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    ancestors = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)}
    return {name for name in found if name in modules and name != module and name not in ancestors}


@functools.cache
def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def layer_name(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_every_module_has_a_layer():
    unplaced = sorted({layer_name(m) for m in graph()} - set(LAYER_OF))
    assert not unplaced, f"place these in LAYERS of tests/test_layering.py: {unplaced}"


def test_no_arrow_runs_up_a_layer():
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if LAYER_OF.get(layer_name(target), -1) > LAYER_OF.get(layer_name(module), 99)
    ]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(upward))


def test_the_checkpoint_code_imports_only_itself():
    from hf_linear.model_types import CHECKPOINT_CODE_MODULES

    travelling = {f"hf_linear.{name}" for name in CHECKPOINT_CODE_MODULES}
    assert travelling == {f"hf_linear.{name}" for name in LAYERS[0]}
    for module in travelling:
        assert graph()[module] <= travelling, f"{module} imports {graph()[module] - travelling}"


def test_no_import_cycle():
    edges = graph()
    # Tarjan's strongly connected components: a component of more than one module is a cycle
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            connect(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walker_sees_function_level_imports_and_cycles(tmp_path):
    """The checks above can fail: a planted cycle through a function-level import is found."""
    (tmp_path / "a.py").write_text("def f():\n    from hf_linear.b import g\n")
    (tmp_path / "b.py").write_text("from hf_linear.a import f\n")
    modules = {"hf_linear.a": tmp_path / "a.py", "hf_linear.b": tmp_path / "b.py"}
    assert imported_modules("hf_linear.a", modules["hf_linear.a"], modules) == {"hf_linear.b"}
    assert imported_modules("hf_linear.b", modules["hf_linear.b"], modules) == {"hf_linear.a"}


def test_every_package_ships_in_a_regular_install():
    """pyproject.toml lists the packages by name (two live outside hf_linear/): a new folder
    missing there would work in an editable install and be absent from a wheel."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(("hf_linear", *init.parent.relative_to(PACKAGE).parts)) for init in PACKAGE.rglob("__init__.py")
    }
    assert folders <= listed, f"add to [tool.setuptools] packages: {sorted(folders - listed)}"
