"""README.zh-CN.md keeps up with README.md: same commands, same flags, same sections and tables, links both ways.

When one of these fails after an edit to README.md, the message names the English block, flag, heading or
table cell to carry across to README.zh-CN.md. Code blocks are copied verbatim (commands and their comments
are not translated); prose and table text are translated, flags and file names stay as they are.
"""

import difflib
import os
import re
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EN, ZH = "README.md", "README.zh-CN.md"
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")


def _read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def _parse(name):
    """Split a README into fenced code blocks and prose lines, remembering line numbers and the heading above.

    Returns (blocks, prose): blocks is a list of dicts (text, line, heading); prose is a list of
    (line number, line, heading) outside code blocks.
    """
    blocks, prose = [], []
    heading, fence, start, body = "(top of file)", None, 0, []
    for n, line in enumerate(_read(name).split("\n"), 1):
        if fence is None:
            m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
            if m:
                fence, start, body = m.group(1), n, [line]
                continue
            if re.match(r"^#{1,6} ", line):
                heading = line.strip()
            prose.append((n, line, heading))
        else:
            body.append(line)
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                blocks.append({"text": "\n".join(body), "line": start, "heading": heading})
                fence = None
    assert fence is None, f"{name}: the code block opened at line {start} is never closed"
    return blocks, prose


def _headings(name):
    return [(n, len(line) - len(line.lstrip("#")), line.lstrip("#").strip())
            for n, line, _ in _parse(name)[1] if re.match(r"^#{1,6} ", line)]


def _tables(name):
    """Markdown tables in the prose: list of dicts (line, heading, rows), rows without the |---| line."""
    tables, current = [], None
    for n, line, heading in _parse(name)[1]:
        if line.startswith("|"):
            if current is None:
                current = {"line": n, "heading": heading, "rows": []}
                tables.append(current)
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                current["rows"].append(cells)
        else:
            current = None
    return tables


def _prose_flags(name):
    """Every --flag written in the prose (inline code and tables included, code blocks excluded)."""
    found = {}
    for n, line, heading in _parse(name)[1]:
        for flag in FLAG.findall(line):
            found.setdefault(flag, (n, heading))
    return found


def _slug(title, seen):
    """GitHub's heading anchor: lower case, only letters/marks/numbers/_/-/space kept, spaces to '-'."""
    base = "".join(c for c in title.lower() if c in " -_" or unicodedata.category(c)[0] in "LMN").replace(" ", "-")
    slug = base if base not in seen else f"{base}-{seen[base]}"
    seen[base] = seen.get(base, 0) + 1
    return slug


def _untranslated(cell):
    """A table cell that is only code (a flag, a file, a command) or only a number: copied, never translated."""
    return re.fullmatch(r"`[^`]+`|[\d.,]+", cell) is not None


def _where(name, item):
    return f"{name} line {item['line']} (under {item['heading']!r})"


# ------------------------------------------------------------------------------------------------ tests
def test_each_readme_links_to_the_other_near_the_top():
    for name, target in ((EN, ZH), (ZH, EN)):
        top = "\n".join(_read(name).split("\n")[:10])
        assert f"]({target})" in top, f"{name} should link to {target} in its first 10 lines, e.g. [...]({target})"


def test_code_blocks_are_identical_and_in_the_same_order():
    en, zh = _parse(EN)[0], _parse(ZH)[0]
    problems = []
    for i in range(max(len(en), len(zh))):
        a, b = (en[i] if i < len(en) else None), (zh[i] if i < len(zh) else None)
        if a is None:
            problems.append(f"code block {i + 1} at {_where(ZH, b)} has no counterpart in {EN}:\n{b['text']}")
        elif b is None:
            problems.append(f"code block {i + 1} at {_where(EN, a)} is missing from {ZH}; copy it across "
                            f"verbatim into the matching section:\n{a['text']}")
        elif a["text"] != b["text"]:
            diff = "\n".join(difflib.unified_diff(a["text"].split("\n"), b["text"].split("\n"), EN, ZH, lineterm=""))
            problems.append(f"code block {i + 1} differs: {_where(EN, a)} vs {_where(ZH, b)}; copy the English "
                            f"block across verbatim:\n{diff}")
            break  # later blocks are likely shifted by this one: fix it first
    assert not problems, f"{len(en)} code blocks in {EN}, {len(zh)} in {ZH}.\n\n" + "\n\n".join(problems)


def test_the_chinese_readme_has_the_two_fresh_machine_commands():
    for name in (EN, ZH):
        lines = [line.strip() for block in _parse(name)[0] for line in block["text"].split("\n")]
        install = [line for line in lines if all(part in line for part in (
            "pip install -r requirements.txt", "sample.py --download", "train.py"))]
        assert install, f"{name} has no code block with the install + download + train line " \
                        f"(python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && ... train.py)"
        assert "bash .ci/run" in lines, f"{name} has no code block with the test command `bash .ci/run`"


def test_every_flag_in_the_flag_tables_is_in_the_chinese_readme():
    zh_text = _read(ZH)
    table_flags = {}
    for table in _tables(EN):
        for row in table["rows"][1:]:
            m = re.fullmatch(r"`(--[^`\s]+)`", row[0])
            if m:
                table_flags.setdefault(m.group(1), table)
    assert table_flags, f"no flag table found in {EN} (rows whose first cell is `--flag`)"
    missing = [f"{flag} (flag table at {_where(EN, t)})" for flag, t in table_flags.items()
               if not re.search(re.escape(flag) + r"(?![\w-])", zh_text)]
    assert not missing, f"{ZH} lacks these flags from {EN}'s flag tables; add their rows, translated:\n  " + \
        "\n  ".join(missing)


def test_every_flag_in_the_english_prose_is_in_the_chinese_prose():
    zh = _prose_flags(ZH)
    missing = [f"{flag} ({EN} line {n}, under {heading!r})" for flag, (n, heading) in _prose_flags(EN).items()
               if flag not in zh]
    assert not missing, f"{ZH} never mentions these flags that {EN}'s text (outside code blocks) does; " \
                        f"translate the sentences or table rows that name them:\n  " + "\n  ".join(missing)


def test_same_sections_in_the_same_order():
    en, zh = _headings(EN), _headings(ZH)
    en_levels, zh_levels = [level for _, level, _ in en], [level for _, level, _ in zh]
    if en_levels != zh_levels:
        def show(h):
            return f"{'#' * h[1]:6} {h[2]}" if h else "-"

        rows = [f"{show(en[i] if i < len(en) else None):60} | {show(zh[i] if i < len(zh) else None)}"
                for i in range(max(len(en), len(zh)))]
        raise AssertionError(f"the headings of {EN} and {ZH} do not pair up (same levels, same order); "
                             f"add the missing section, translated:\n" + "\n".join(rows))


def test_same_tables_with_the_same_flags_code_and_numbers():
    en, zh = _tables(EN), _tables(ZH)
    assert len(en) == len(zh), f"{EN} has {len(en)} tables, {ZH} {len(zh)}; English tables at lines " \
                               f"{[t['line'] for t in en]}, Chinese at {[t['line'] for t in zh]}"
    problems = []
    for i, (a, b) in enumerate(zip(en, zh), 1):
        if len(a["rows"]) != len(b["rows"]):
            firsts = [row[0] for row in b["rows"]]
            absent = [row[0] for row in a["rows"] if _untranslated(row[0]) and row[0] not in firsts]
            problems.append(f"table {i}: {_where(EN, a)} has {len(a['rows'])} rows, {_where(ZH, b)} "
                            f"{len(b['rows'])}" + (f"; rows missing from {ZH}: {', '.join(absent)}" if absent else ""))
            continue
        widths = [(r, len(x), len(y)) for r, (x, y) in enumerate(zip(a["rows"], b["rows"]), 1) if len(x) != len(y)]
        if widths:
            r, x, y = widths[0]
            problems.append(f"table {i}: row {r} has {x} cells at {_where(EN, a)}, {y} at {_where(ZH, b)}")
            continue
        for r, (row_a, row_b) in enumerate(zip(a["rows"], b["rows"]), 1):
            for c, (cell_a, cell_b) in enumerate(zip(row_a, row_b), 1):
                if _untranslated(cell_a) and cell_a != cell_b:
                    problems.append(f"table {i} ({_where(EN, a)}), row {r}, column {c}: "
                                    f"{EN} has {cell_a!r}, {ZH} has {cell_b!r}")
    assert not problems, "\n".join(problems)


def test_in_page_links_point_at_headings():
    for name in (EN, ZH):
        seen, anchors = {}, set()
        for _, _, title in _headings(name):
            anchors.add(_slug(title, seen))
        prose = "\n".join(line for _, line, _ in _parse(name)[1])
        broken = [m for m in re.findall(r"\]\(#([^)]+)\)", prose) if m not in anchors]
        assert not broken, f"{name}: links to #{', #'.join(broken)} match no heading; anchors are {sorted(anchors)}"
