"""No import cycle in pyrunc/: every `import`, at module level or inside a
function (a lazy import is still a dependency), between pyrunc's own
modules.  A submodule's import of its own ancestor package is not counted:
the package is always initialised before its submodules, so reading a name
from it (`from . import OCI_VERSION`) cannot start a cycle."""
import ast
import os

PKG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "pyrunc")


def module_name(path):
    rel = os.path.relpath(path, os.path.dirname(PKG_DIR))[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def all_modules():
    out = {}
    for dirpath, _, files in os.walk(PKG_DIR):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                out[module_name(path)] = path
    return out


def imports_of(name, path, modules):
    """pyrunc modules `name` imports (any depth in the file)."""
    is_pkg = path.endswith("__init__.py")
    package = name if is_pkg else name.rpartition(".")[0]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module or ""
            submodules = {target + "." + a.name for a in node.names
                          if target + "." + a.name in modules or a.name.startswith("_native")}
            found.update(submodules)  # `from pkg import module`
            if len(submodules) < len(node.names):
                found.add(target)  # a name defined in `target` itself
    # (_native_* are C extensions: leaves)
    return {m for m in found if m in modules and m != name and not name.startswith(m + ".")}


def find_cycle(graph):
    """One cycle as a list of modules, or None (iterative DFS)."""
    state = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child):
                    state[child] = 1
                    path.append(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def test_no_import_cycle_in_pyrunc():
    modules = all_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
