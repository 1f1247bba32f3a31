"""Charts drawn to files, Chinese class names included: the one set-up every chart of the project uses.

Why here: the training report (history, confusion matrix) and the data check (images per class)
draw the same way. matplotlib draws with the Agg backend (files only, no display). Chinese class
names need a CJK font: the first installed one of a known list is used (Debian: fonts-wqy-microhei
or fonts-noto-cjk); without one, charts label classes by id and say so.
"""

import os

CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC",
             "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "AR PL UMing CN", "Droid Sans Fallback")
CJK_FONT_FILES = ("wqy-microhei", "wqy-zenhei", "notosanscjk", "notoserifcjk", "sourcehansans", "simhei", "msyh",
                  "pingfang", "droidsansfallback", "uming")


def pyplot():
    """matplotlib.pyplot, drawing with the Agg backend (no display needed)."""
    import matplotlib  # heavy: loaded only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def find_cjk_font():
    """Name of an installed font that can draw Chinese, or None.

    Matplotlib caches its font list, so a font installed after the cache was built is missing from
    it: then the system font files are scanned by name and a CJK one is registered.
    """
    from matplotlib import font_manager  # heavy: loaded only when a chart is drawn

    def known():
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    name = known()
    if name is None:
        for path in font_manager.findSystemFonts():
            base = os.path.basename(path).lower().replace("-", "").replace("_", "")
            if any(key.replace("-", "") in base for key in CJK_FONT_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        name = known()
    return name


def class_ticks(class_names):
    """(tick labels, font): "id name" in a CJK font when one is installed, else the bare ids and None."""
    font = find_cjk_font()
    if font:
        return [f"{i} {name}" for i, name in enumerate(class_names)], font
    return [str(i) for i in range(len(class_names))], None
