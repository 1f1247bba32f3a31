"""How the code is laid out, in figures (issue 7's acceptance): is one room doing everything?

    python bench/layout.py            # figures + PASS/FAIL per rule, exit 1 if a rule fails
    python bench/layout.py --root /tmp/old_checkout

Counts code lines of Python and JavaScript outside tests/ (not blank, not only a comment;
docstrings count, they are part of reading the code) and checks:
- the biggest folder (its own files, not its sub-folders) or module holds at most 25% of them;
- each entry script (train.py, predict.py, server.py, sample.py) has at most 220 code lines;
- no module in models/, tools/ or bench/ imports an entry script;
- at most 8 imports of the project's own modules inside functions (the rest sit at the top);
- tools/data/ imports nothing from tools.training (reading data folders loads no training code);
- the shared TrashNet copy's path is spelled out once, tests/ included (tests/support/trashnet.py).
and in tests/ (issue 20: one place for each rule):
- no file imports a test file (tests/test_*.py) or conftest: shared helpers live in tests/support/;
- tests/conftest.py holds fixtures and pytest hooks only: at its top level nothing but its docstring,
  imports, UPPER_CASE literal constants, fixtures and pytest_* hooks (so nothing runs at import: no
  sys.path or os.environ change, no helper);
- each fixture of tests/conftest.py (the one `browser` among them) is defined nowhere else in tests/.
- the older input contract (best.h5 files that take float32 input the caller preprocessed) is named
  only where it is defined (tools/contract.py, models/preprocess.py) and in tools/model_loading.py,
  which adapts such models to take pixels when they are loaded: no other module branches on it.
"""

import argparse
import ast
import os
import re
import sys
from collections import Counter

ENTRY_SCRIPTS = ("train.py", "predict.py", "server.py", "sample.py")
OWN_PACKAGES = ("models", "tools", "bench", "train", "predict", "server", "sample")
SKIP_DIRS = {"tests", ".git", ".venv", "node_modules", "__pycache__", "output", ".gpu", "garbage_classify_v2"}
MAX_SHARE, MAX_ENTRY_LINES, MAX_INNER_IMPORTS = 0.25, 220, 8
#: The folder name of the shared TrashNet copy: the path component only the one definition spells out.
TRASHNET_FOLDER = "trashnet_v2"
TESTS, CONFTEST = "tests", os.path.join("tests", "conftest.py")
#: Fixtures that must be defined in conftest.py (and so, by the last rule, only there).
SHARED_FIXTURES = ("browser",)
#: The names of the older input contract, and the files that may use them (this one names them here).
OLDER_CONTRACT = re.compile(r"\b(CAFFE|caffe_float32|input_contract)\b")
OLDER_CONTRACT_FILES = ("tools/contract.py", "models/preprocess.py", "tools/model_loading.py", "bench/layout.py")


def source_files(root, skip=SKIP_DIRS):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        for name in sorted(files):
            if name.endswith((".py", ".js")):
                yield os.path.relpath(os.path.join(folder, name), root)


def code_lines(path):
    comment = "#" if path.endswith(".py") else "//"
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip() and not line.strip().startswith(comment))


def _imported_modules(node):
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return []


def imports(path):
    """(top-level own imports, function-level own imports) of a Python file, as module names."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    inner = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    inner.add(node)
    own = lambda names: [n for n in names if n.split(".")[0] in OWN_PACKAGES]  # noqa: E731
    top, nested = [], []
    for node in ast.walk(tree):
        names = own(_imported_modules(node))
        if names:
            (nested if node in inner else top).append((node.lineno, names[0]))
    return top, nested


def path_parts(path, part):
    """Line numbers of the string constants of a Python file that are exactly `part` (a path component)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == part]
def test_files(root):
    """The Python files under tests/ (support/ included), relative to root."""
    for folder, dirs, files in os.walk(os.path.join(root, TESTS)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), root)


def parse(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def imports_of_tests(tree):
    """(line, module) of each import, anywhere in the file, of a test file or conftest."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.module and not node.level else [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            first = parts[1] if parts[0] == TESTS and len(parts) > 1 else parts[0]
            if first.startswith("test_") or first == "conftest":
                out.append((node.lineno, name))
    return out


def fixture_name(fn):
    """The name a function defines as a pytest fixture, or None when it is not one."""
    for deco in fn.decorator_list:
        call = deco if isinstance(deco, ast.Call) else None
        target = call.func if call else deco
        if (isinstance(target, ast.Attribute) and target.attr == "fixture") or \
                (isinstance(target, ast.Name) and target.id == "fixture"):
            named = [k.value.value for k in (call.keywords if call else []) if k.arg == "name"
                     and isinstance(k.value, ast.Constant)]
            return named[0] if named else fn.name
    return None


def fixtures(tree):
    """{fixture name: line} of the fixtures a file defines (at its top level or in its classes)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and fixture_name(node):
            out[fixture_name(node)] = node.lineno
    return out


def _is_constant(node):
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = [n for t in targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
    if not all(isinstance(n, ast.Name) and n.id.isupper() for n in names) or node.value is None:
        return False
    try:
        ast.literal_eval(node.value)
    except ValueError:
        return False
    return True


def not_fixtures_or_hooks(tree):
    """(line, what) of each top-level statement of a conftest that is not its docstring, an import, an
    UPPER_CASE literal constant, a fixture or a pytest_* hook."""
    out = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_constant(node):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                (node.name.startswith("pytest_") or fixture_name(node)):
            continue
        what = f"{'class' if isinstance(node, ast.ClassDef) else 'def'} {node.name} (neither a fixture nor a hook)" \
            if hasattr(node, "name") else ast.unparse(node).splitlines()[0][:60]
        out.append((node.lineno, what))
    return out


def check_tests(root, rule):
    """The rules for tests/ (see the docstring); prints its figures first."""
    files = list(test_files(root))
    trees = {f: parse(os.path.join(root, f)) for f in files}
    shared = fixtures(trees[CONFTEST]) if CONFTEST in trees else {}
    print(f"\ntests/: {sum(os.path.basename(f).startswith('test_') for f in files)} test files, "
          f"{sum(f.startswith(os.path.join(TESTS, 'support')) for f in files)} support modules, "
          f"{len(shared)} fixtures in conftest.py")
    imported = [(f, line, m) for f in files for line, m in imports_of_tests(trees[f])]
    rule(not imported, "no file in tests/ imports a test file or conftest (shared helpers: tests/support/)"
         + "".join(f"\n          {f}:{line} imports {m}" for f, line, m in imported))
    stray = not_fixtures_or_hooks(trees[CONFTEST]) if CONFTEST in trees else [(0, "no tests/conftest.py")]
    rule(not stray, "tests/conftest.py holds only imports, constants, fixtures and pytest hooks (nothing runs "
         "at import)" + "".join(f"\n          {CONFTEST}:{line} {what}" for line, what in stray))
    again = [(f, line, name) for f in files if f != CONFTEST for name, line in fixtures(trees[f]).items()
             if name in shared]
    missing = [name for name in SHARED_FIXTURES if name not in shared]
    rule(not again and not missing, f"each fixture of tests/conftest.py is defined once, there ({', '.join(SHARED_FIXTURES)} "
         "among them)" + "".join(f"\n          {f}:{line} defines {name} again" for f, line, name in again)
         + "".join(f"\n          {name} is not a fixture of {CONFTEST}" for name in missing))
def naming_the_older_contract(root, files):
    """(file, line number) of each mention of OLDER_CONTRACT in a Python file outside OLDER_CONTRACT_FILES."""
    found = []
    for f in files:
        if f.endswith(".py") and f.replace(os.sep, "/") not in OLDER_CONTRACT_FILES:
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                found += [(f, i) for i, line in enumerate(fh, 1) if OLDER_CONTRACT.search(line)]
    return found


def main(args):
    root = os.path.abspath(args.root)
    files = list(source_files(root))
    lines = {f: code_lines(os.path.join(root, f)) for f in files}
    total = sum(lines.values())
    folders = Counter()
    for f, n in lines.items():
        folders[os.path.dirname(f) or "."] += n
    ok = True

    def rule(passed, text):
        nonlocal ok
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {text}")

    print(f"{root}: {total} code lines in {len(files)} files (Python + JS, tests excluded)\n")
    print("folders (own files only):")
    for folder, n in folders.most_common():
        print(f"  {folder + '/':<20} {n:>5}  {n / total:6.1%}")
    print("\nbiggest modules:")
    for f, n in sorted(lines.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {f:<32} {n:>5}  {n / total:6.1%}")
    inner, upward, data_to_training = [], [], []
    for f in files:
        if not f.endswith(".py"):
            continue
        top, nested = imports(os.path.join(root, f))
        inner += [(f, line, m) for line, m in nested]
        if f.split(os.sep)[0] in ("models", "tools", "bench"):
            upward += [(f, line, m) for line, m in top + nested if m.split(".")[0] in
                       tuple(s[:-3] for s in ENTRY_SCRIPTS)]
        if f.startswith(os.path.join("tools", "data") + os.sep):
            data_to_training += [(f, line, m) for line, m in top + nested if m.startswith("tools.training")]
    trashnet = [(f, line) for f in source_files(root, SKIP_DIRS - {"tests"})
                if f.endswith(".py") and f != os.path.join("bench", "layout.py")  # this file names the part
                for line in path_parts(os.path.join(root, f), TRASHNET_FOLDER)]
    print(f"\nfunction-level imports of the project's own modules: {len(inner)}")
    for f, line, m in inner:
        print(f"  {f}:{line}  {m}")
    print("\nrules:")
    name, n = max(folders.items(), key=lambda kv: kv[1])
    rule(n / total <= MAX_SHARE, f"biggest folder {name}/ holds {n / total:.1%} of the code (<= {MAX_SHARE:.0%})")
    f, n = max(lines.items(), key=lambda kv: kv[1])
    rule(n / total <= MAX_SHARE, f"biggest module {f} holds {n / total:.1%} (<= {MAX_SHARE:.0%})")
    for script in ENTRY_SCRIPTS:
        n = lines.get(script, 0)
        rule(n <= MAX_ENTRY_LINES, f"{script}: {n} code lines (<= {MAX_ENTRY_LINES})")
    rule(not upward, "no module in models/, tools/, bench/ imports an entry script"
         + "".join(f"\n          {f}:{line} imports {m}" for f, line, m in upward))
    rule(len(inner) <= MAX_INNER_IMPORTS, f"{len(inner)} function-level imports of own modules (<= {MAX_INNER_IMPORTS})")
    rule(not data_to_training, "tools/data/ imports nothing from tools.training"
         + "".join(f"\n          {f}:{line} imports {m}" for f, line, m in data_to_training))
    rule(len(trashnet) == 1, f"the TrashNet path is spelled out in one place, tests included: {TRASHNET_FOLDER!r} at "
         + (", ".join(f"{f}:{line}" for f, line in trashnet) or "none"))
    check_tests(root, rule)
    older = naming_the_older_contract(root, files)
    rule(not older, "the older input contract is named only in " + ", ".join(OLDER_CONTRACT_FILES[:3])
         + "".join(f"\n          {f}:{line}" for f, line in older))
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="checkout to measure (default: this one)")
    sys.exit(main(parser.parse_args()))
