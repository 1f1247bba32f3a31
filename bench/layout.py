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
"""

import argparse
import ast
import os
import sys
from collections import Counter

ENTRY_SCRIPTS = ("train.py", "predict.py", "server.py", "sample.py")
OWN_PACKAGES = ("models", "tools", "bench", "train", "predict", "server", "sample")
SKIP_DIRS = {"tests", ".git", ".venv", "node_modules", "__pycache__", "output", ".gpu", "garbage_classify_v2"}
MAX_SHARE, MAX_ENTRY_LINES, MAX_INNER_IMPORTS = 0.25, 220, 8
#: The folder name of the shared TrashNet copy: the path component only the one definition spells out.
TRASHNET_FOLDER = "trashnet_v2"


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
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="checkout to measure (default: this one)")
    sys.exit(main(parser.parse_args()))
