"""Each Chinese page keeps up with its English one: README.zh-CN.md with README.md, and docs/X.zh-CN.md with
docs/X.md: same commands, same flags, same sections and tables, links both ways; and every relative link of
the READMEs and docs/ leads to a file and heading that exist.

When one of these fails after an edit to an English page, the message names the English block, flag, heading
or table cell to carry across to its Chinese page. Code blocks are copied verbatim (commands and their comments
are not translated); prose and table text are translated, flags and file names stay as they are.
"""

import difflib
import glob
import os
import re
import unicodedata

import pytest

from support import ROOT

EN, ZH = "README.md", "README.zh-CN.md"
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
#: A Markdown link or image: [text](target) or ![alt](target), the target without spaces.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _zh_name(name):
    """The Chinese counterpart's name: docs/X.md -> docs/X.zh-CN.md, images/page.png -> images/page.zh-CN.png."""
    stem, ext = os.path.splitext(name)
    return f"{stem}.zh-CN{ext}"


def _docs_pages():
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
                  if not p.endswith(".zh-CN.md"))


#: (English page, Chinese page) pairs kept in step.
PAIRS = [(EN, ZH)] + [(page, _zh_name(page)) for page in _docs_pages()]
#: Every page whose links must resolve.
PAGES = [name for pair in PAIRS for name in pair]


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


def _anchors(name):
    """The heading anchors of a page, as GitHub makes them."""
    seen = {}
    return {_slug(title, seen) for _, _, title in _headings(name)}


def _links(name):
    """(line number, target) of every link and image in a page's prose (code blocks excluded; a link's text
    may span lines)."""
    prose = _parse(name)[1]
    text = "\n".join(line for _, line, _ in prose)
    return [(prose[text.count("\n", 0, m.end())][0], m.group(1)) for m in LINK.finditer(text)]


def _resolve(name, target):
    """A relative link target -> (path from the repository root, or "" for this page, anchor or None);
    None for links that leave the repository (http:, https:, mailto:)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
        return None
    path, _, anchor = target.partition("#")
    if not path:
        return name, anchor or None
    return os.path.normpath(os.path.join(os.path.dirname(name), path)), anchor or None


def _linked_files(name):
    """The files a page links to (repository paths), its own counterpart and itself left out."""
    files = {r[0] for _, target in _links(name) if (r := _resolve(name, target))}
    return files - {name, _zh_name(name), name.replace(".zh-CN", "")}


def _where(name, item):
    return f"{name} line {item['line']} (under {item['heading']!r})"


# ------------------------------------------------------------------------------------------------ tests
pair = pytest.mark.parametrize("en, zh", PAIRS, ids=[en for en, _ in PAIRS])


def test_every_docs_page_has_both_languages():
    pages = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))}
    orphans = sorted(p for p in pages if p.endswith(".zh-CN.md") and p.replace(".zh-CN.md", ".md") not in pages)
    missing = sorted(_zh_name(p) for p in pages if not p.endswith(".zh-CN.md") and _zh_name(p) not in pages)
    assert not missing, f"these English pages have no Chinese page; translate them: {missing}"
    assert not orphans, f"these Chinese pages have no English page: {orphans}"


@pair
def test_each_page_links_to_the_other_near_the_top(en, zh):
    for name, target in ((en, zh), (zh, en)):
        rel = os.path.relpath(target, os.path.dirname(name))
        top = "\n".join(_read(name).split("\n")[:10])
        assert f"]({rel})" in top, f"{name} should link to {target} in its first 10 lines, e.g. [...]({rel})"


@pair
def test_code_blocks_are_identical_and_in_the_same_order(en, zh):
    a_blocks, b_blocks = _parse(en)[0], _parse(zh)[0]
    problems = []
    for i in range(max(len(a_blocks), len(b_blocks))):
        a, b = (a_blocks[i] if i < len(a_blocks) else None), (b_blocks[i] if i < len(b_blocks) else None)
        if a is None:
            problems.append(f"code block {i + 1} at {_where(zh, b)} has no counterpart in {en}:\n{b['text']}")
        elif b is None:
            problems.append(f"code block {i + 1} at {_where(en, a)} is missing from {zh}; copy it across "
                            f"verbatim into the matching section:\n{a['text']}")
        elif a["text"] != b["text"]:
            diff = "\n".join(difflib.unified_diff(a["text"].split("\n"), b["text"].split("\n"), en, zh, lineterm=""))
            problems.append(f"code block {i + 1} differs: {_where(en, a)} vs {_where(zh, b)}; copy the English "
                            f"block across verbatim:\n{diff}")
            break  # later blocks are likely shifted by this one: fix it first
    assert not problems, f"{len(a_blocks)} code blocks in {en}, {len(b_blocks)} in {zh}.\n\n" + "\n\n".join(problems)


def test_the_chinese_readme_has_the_two_fresh_machine_commands():
    for name in (EN, ZH):
        lines = [line.strip() for block in _parse(name)[0] for line in block["text"].split("\n")]
        install = [line for line in lines if all(part in line for part in (
            "pip install -r requirements.txt", "sample.py --download", "train.py"))]
        assert install, f"{name} has no code block with the install + download + train line " \
                        f"(python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && ... train.py)"
        assert "bash .ci/run" in lines, f"{name} has no code block with the test command `bash .ci/run`"


@pair
def test_every_flag_in_the_flag_tables_is_in_the_chinese_page(en, zh):
    zh_text = _read(zh)
    table_flags = {}
    for table in _tables(en):
        for row in table["rows"][1:]:
            m = re.fullmatch(r"`(--[^`\s]+)`", row[0])
            if m:
                table_flags.setdefault(m.group(1), table)
    assert table_flags or en != EN, f"no flag table found in {EN} (rows whose first cell is `--flag`)"
    missing = [f"{flag} (flag table at {_where(en, t)})" for flag, t in table_flags.items()
               if not re.search(re.escape(flag) + r"(?![\w-])", zh_text)]
    assert not missing, f"{zh} lacks these flags from {en}'s flag tables; add their rows, translated:\n  " + \
        "\n  ".join(missing)


@pair
def test_every_flag_in_the_english_prose_is_in_the_chinese_prose(en, zh):
    zh_flags = _prose_flags(zh)
    missing = [f"{flag} ({en} line {n}, under {heading!r})" for flag, (n, heading) in _prose_flags(en).items()
               if flag not in zh_flags]
    assert not missing, f"{zh} never mentions these flags that {en}'s text (outside code blocks) does; " \
                        f"translate the sentences or table rows that name them:\n  " + "\n  ".join(missing)


@pair
def test_same_sections_in_the_same_order(en, zh):
    a, b = _headings(en), _headings(zh)
    if [level for _, level, _ in a] != [level for _, level, _ in b]:
        def show(h):
            return f"{'#' * h[1]:6} {h[2]}" if h else "-"

        rows = [f"{show(a[i] if i < len(a) else None):60} | {show(b[i] if i < len(b) else None)}"
                for i in range(max(len(a), len(b)))]
        raise AssertionError(f"the headings of {en} and {zh} do not pair up (same levels, same order); "
                             f"add the missing section, translated:\n" + "\n".join(rows))


@pair
def test_same_tables_with_the_same_flags_code_and_numbers(en, zh):
    a_tables, b_tables = _tables(en), _tables(zh)
    assert len(a_tables) == len(b_tables), f"{en} has {len(a_tables)} tables, {zh} {len(b_tables)}; English " \
        f"tables at lines {[t['line'] for t in a_tables]}, Chinese at {[t['line'] for t in b_tables]}"
    problems = []
    for i, (a, b) in enumerate(zip(a_tables, b_tables), 1):
        if len(a["rows"]) != len(b["rows"]):
            firsts = [row[0] for row in b["rows"]]
            absent = [row[0] for row in a["rows"] if _untranslated(row[0]) and row[0] not in firsts]
            problems.append(f"table {i}: {_where(en, a)} has {len(a['rows'])} rows, {_where(zh, b)} "
                            f"{len(b['rows'])}" + (f"; rows missing from {zh}: {', '.join(absent)}" if absent else ""))
            continue
        widths = [(r, len(x), len(y)) for r, (x, y) in enumerate(zip(a["rows"], b["rows"]), 1) if len(x) != len(y)]
        if widths:
            r, x, y = widths[0]
            problems.append(f"table {i}: row {r} has {x} cells at {_where(en, a)}, {y} at {_where(zh, b)}")
            continue
        for r, (row_a, row_b) in enumerate(zip(a["rows"], b["rows"]), 1):
            for c, (cell_a, cell_b) in enumerate(zip(row_a, row_b), 1):
                if _untranslated(cell_a) and cell_a != cell_b:
                    problems.append(f"table {i} ({_where(en, a)}), row {r}, column {c}: "
                                    f"{en} has {cell_a!r}, {zh} has {cell_b!r}")
    assert not problems, "\n".join(problems)


@pair
def test_both_languages_link_the_same_files(en, zh):
    """A file the English page links to is linked from the Chinese page too, as its Chinese counterpart
    where one exists (docs/X.zh-CN.md, page.zh-CN.png), and the other way round."""
    def counterpart(path):
        return _zh_name(path) if os.path.exists(os.path.join(ROOT, _zh_name(path))) else path

    expected, found = {counterpart(p) for p in _linked_files(en)}, _linked_files(zh)
    assert expected <= found, f"{zh} lacks links to {sorted(expected - found)}: the files {en} links to, " \
                              f"as their Chinese pages where they have one"
    assert found <= expected, f"{zh} links to {sorted(found - expected)}, which {en} does not link to"


@pytest.mark.parametrize("name", PAGES)
def test_relative_links_lead_to_files_and_headings(name):
    """Every relative link and image of the page names a file of the checkout, and an anchor a heading of
    its page (GitHub's anchors); links to this page's own headings included."""
    broken = []
    for n, target in _links(name):
        resolved = _resolve(name, target)
        if resolved is None:
            continue
        path, anchor = resolved
        if not os.path.exists(os.path.join(ROOT, path)):
            broken.append(f"line {n}: {target} (no file {path})")
        elif anchor and path.endswith(".md") and anchor not in _anchors(path):
            broken.append(f"line {n}: {target} (no heading of {path} has the anchor #{anchor}; its anchors: "
                          f"{sorted(_anchors(path))})")
    assert not broken, f"{name}: broken links:\n  " + "\n  ".join(broken)


def test_every_docs_page_is_linked_from_its_readme():
    for readme, pages in ((EN, [en for en, _ in PAIRS[1:]]), (ZH, [zh for _, zh in PAIRS[1:]])):
        unlinked = sorted(set(pages) - _linked_files(readme))
        assert not unlinked, f"{readme} links to none of {unlinked}: link each from the section it details"
