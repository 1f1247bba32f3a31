"""Item and bin names in the user's language (tools/names.py): every class of the shipped rule files
has an English name, a class without one keeps its own, and the language follows the locale."""

import json
import os

import pytest

from support.scripts import ROOT
from support.trashnet import TRASHNET_ROOT
from tools.contract import bin_of, item_of
from tools.names import NamesFileError, bin_name, default_lang, english_names, item_name, names_in

RULE_FILES = {"huawei": os.path.join(ROOT, "garbage_classify_v2", "garbage_classify_rule.json"),
              "trashnet": os.path.join(TRASHNET_ROOT, "garbage_classify_rule.json")}


@pytest.mark.parametrize("which", sorted(RULE_FILES))
def test_every_class_of_the_shipped_rule_files_has_an_english_name(which):
    path = RULE_FILES[which]
    if not os.path.isfile(path):
        pytest.skip("needs ../shared/data/trashnet_v2 (the shared TrashNet copy); absent in a user's clone")
    names = list(json.load(open(path, encoding="utf-8")).values())
    english = [item_name(n, "en") for n in names]
    assert all(e != item_of(n) and e.isascii() for e, n in zip(english, names)), list(zip(names, english))
    assert len(set(english)) == len(names)  # no two classes read alike
    assert all(bin_name(bin_of(n), "en").isascii() for n in names)
    assert [item_name(n, "zh") for n in names] == [item_of(n) for n in names]  # zh: the names themselves


def test_a_class_without_an_english_name_keeps_its_own(tmp_path):
    labels = ["可回收物/易拉罐", "可回收物/旧手机", "glass", "本地桶/某物"]
    assert names_in(labels, "en") == {"items": ["drink can", "旧手机", "glass", "某物"],
                                      "bins": {"可回收物": "Recyclable", "glass": "glass", "本地桶": "本地桶"}}
    assert names_in(labels, "zh")["items"] == ["易拉罐", "旧手机", "glass", "某物"]
    assert english_names(str(tmp_path / "absent.json")) == ({}, {})  # no file: every name as it is
    (tmp_path / "names.json").write_text('{"bins": {}, "items": ["not a mapping"]}', encoding="utf-8")
    with pytest.raises(NamesFileError, match="names.json must hold"):
        english_names(str(tmp_path / "names.json"))
    with pytest.raises(ValueError, match="Received: lang='fr'"):
        item_name("可回收物/易拉罐", "fr")


@pytest.mark.parametrize("environ, lang", [
    ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "en_US.UTF-8"}, "en"), ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US"}, "zh"),
    ({"LANGUAGE": "en_GB:zh_CN", "LANG": "zh_CN.UTF-8"}, "en"), ({"LANG": "C.UTF-8"}, "en")])
def test_the_language_follows_the_locale(environ, lang):
    assert default_lang(environ) == lang
