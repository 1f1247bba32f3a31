"""How the code is laid out, in figures (issue 7's acceptance): is one room doing everything?

    python bench/layout.py            # figures + PASS/FAIL per rule, exit 1 if a rule fails
    python bench/layout.py --root /tmp/old_checkout

Counts code lines of Python and JavaScript outside tests/ (not blank, not only a comment;
docstrings count, they are part of reading the code) and checks:
- the biggest folder (its own files, not its sub-folders) or module holds at most 25% of them;
- each entry script (train.py, predict.py, server.py, sample.py) has at most 220 code lines;
- no module in models/, tools/ or bench/ imports an entry script;
- at most 8 imports of the project's own modules inside functions (the rest sit at the top);
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
#: The names of the older input contract, and the files that may use them (this one names them here).
OLDER_CONTRACT = re.compile(r"\b(CAFFE|caffe_float32|input_contract)\b")
OLDER_CONTRACT_FILES = ("tools/contract.py", "models/preprocess.py", "tools/model_loading.py", "bench/layout.py")


def source_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
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
    inner, upward = [], []
    for f in files:
        if not f.endswith(".py"):
            continue
        top, nested = imports(os.path.join(root, f))
        inner += [(f, line, m) for line, m in nested]
        if f.split(os.sep)[0] in ("models", "tools", "bench"):
            upward += [(f, line, m) for line, m in top + nested if m.split(".")[0] in
                       tuple(s[:-3] for s in ENTRY_SCRIPTS)]
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
    older = naming_the_older_contract(root, files)
    rule(not older, "the older input contract is named only in " + ", ".join(OLDER_CONTRACT_FILES[:3])
         + "".join(f"\n          {f}:{line}" for f, line in older))
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="checkout to measure (default: this one)")
    sys.exit(main(parser.parse_args()))
