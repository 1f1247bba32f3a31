"""requirements.txt and environment.yml must install the same thing."""

import os
import re

from conftest import ROOT


def _specs(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*([<>=!~].*)?$", line)
        if m:
            out[m.group(1).lower()] = (m.group(2) or "").replace(" ", "")
    return out


def test_environment_yml_names_the_same_packages_as_requirements():
    req = _specs(open(os.path.join(ROOT, "requirements.txt")).read().splitlines())
    env_text = open(os.path.join(ROOT, "environment.yml")).read()
    assert re.search(r"^name:\s*garbage\s*$", env_text, re.M) and "python=3.11" in env_text
    pip_part = env_text.split("- pip:", 1)[1].splitlines()
    env = _specs(pip_part)
    assert len(req) >= 10
    assert env == req


def test_rule_file_holds_the_40_huawei_classes():
    import json

    rules = json.load(open(os.path.join(ROOT, "garbage_classify_v2", "garbage_classify_rule.json"), encoding="utf-8"))
    assert len(rules) == 40
    assert rules["0"] == "其他垃圾/一次性快餐盒" and rules["14"] == "可回收物/充电宝" and rules["39"] == "有害垃圾/过期药物"
    assert {v.split("/")[0] for v in rules.values()} == {"其他垃圾", "厨余垃圾", "可回收物", "有害垃圾"}
