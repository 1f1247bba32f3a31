"""Terminal tables whose columns line up with CJK class names (two columns a character): the images per
class that training prints, and the widths the training report pads its rows to."""

import unicodedata

import numpy as np


def display_width(text):
    """Terminal columns of `text`: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text, width):
    return text + " " * max(0, width - display_width(text))


def format_counts(class_names, *columns):
    """A table of images per class; `columns` are (title, counts) pairs."""
    width = max(display_width(n) for n in class_names + ["class"])
    rows = [f"{'id':>3}  {pad('class', width)}" + "".join(f"  {t:>6}" for t, _ in columns)]
    for i, name in enumerate(class_names):
        rows.append(f"{i:>3}  {pad(name, width)}" + "".join(f"  {int(c[i]):>6}" for _, c in columns))
    rows.append(f"{'':>3}  {pad('total', width)}" + "".join(f"  {int(np.sum(c)):>6}" for _, c in columns))
    return "\n".join(rows)
