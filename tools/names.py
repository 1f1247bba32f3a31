"""Class and bin names in the user's language, for the web page (/labels) and predict.py (--lang).

The model's class names are its rule file's, "bin/item" in Chinese (labels.json). Their English
names live in one project file, NAMES_FILE (garbage_classify_v2/names_en.json):

    {"bins": {"可回收物": "Recyclable", ...}, "items": {"易拉罐": "drink can", ...}}

keyed by the Chinese bin and item names, so it serves every rule file that uses those names: the 40
Huawei classes, TrashNet's six, and a user's own classes once their lines are added. A bin or item
the file does not name keeps its own name, in every language.
"""

import functools
import json
import locale
import os

from tools.contract import bin_of, item_of
from tools.errors import GarbageError

#: The languages names are shown in: "zh" is the class names themselves, "en" NAMES_FILE's.
LANGS = ("zh", "en")
#: The English names of bins and items (see the module docstring).
NAMES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "garbage_classify_v2",
                          "names_en.json")
#: Environment variables that name the user's language, in the order gettext reads them.
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


class NamesFileError(GarbageError, ValueError):
    """NAMES_FILE cannot be read or is not {"bins": {...}, "items": {...}} (the message says which)."""


@functools.lru_cache(maxsize=8)
def english_names(path=NAMES_FILE):
    """(bins, items): the two dicts of the names file at `path`; both empty when there is no such file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}, {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NamesFileError(f"cannot read the names file {path}: {e}") from None
    parts = [data.get(key) if isinstance(data, dict) else None for key in ("bins", "items")]
    if not all(isinstance(part, dict) and all(isinstance(v, str) for v in part.values()) for part in parts):
        raise NamesFileError(f'the names file {path} must hold {{"bins": {{"可回收物": "Recyclable", ...}}, '
                             f'"items": {{"易拉罐": "drink can", ...}}}}')
    return parts[0], parts[1]


def check_lang(lang):
    if lang not in LANGS:
        raise ValueError(f"`lang` must be one of {LANGS}. Received: lang={lang!r}")
    return lang


def bin_name(bin_, lang, path=NAMES_FILE):
    """The bin `bin_` ("可回收物") in `lang`: its own name for "zh" or where the names file has none."""
    return english_names(path)[0].get(bin_, bin_) if check_lang(lang) == "en" else bin_


def item_name(name, lang, path=NAMES_FILE):
    """The item of the class name `name` ("可回收物/易拉罐") in `lang`, e.g. "drink can"; its own item
    name ("易拉罐") for "zh" or where the names file has none."""
    item = item_of(name)
    return english_names(path)[1].get(item, item) if check_lang(lang) == "en" else item


def names_in(labels, lang, path=NAMES_FILE):
    """What /labels gives the page for `lang`: {"items": [the item of each class], "bins": {bin: name}}."""
    return {"items": [item_name(n, lang, path) for n in labels],
            "bins": {b: bin_name(b, lang, path) for b in dict.fromkeys(bin_of(n) for n in labels)}}


def default_lang(environ=None):
    """"zh" when the user's locale is Chinese (LANGUAGE, LC_ALL, LC_MESSAGES, LANG, else the system's,
    e.g. on Windows), else "en"."""
    environ = os.environ if environ is None else environ
    value = next((environ[v] for v in LOCALE_VARIABLES if environ.get(v)), None)
    if value is None:
        value = locale.getlocale()[0] or ""
    return "zh" if value.lower().startswith(("zh", "chinese")) else "en"
