"""The rule file (`garbage_classify_rule.json`, {"0": "其他垃圾/一次性快餐盒", ...}): its name, where it
lies beside a data folder, and the class names it lists. Read by the data layouts, written by the
server's --collect folder and the Huawei download."""

import json
import os

from tools.data import DataError

RULE_FILE_NAME = "garbage_classify_rule.json"


def find_rule_file(data_dir):
    """The rule file in `data_dir` or its parent (the garbage_classify_v2 layout), else None."""
    for folder in (data_dir, os.path.dirname(os.path.abspath(data_dir))):
        path = os.path.join(folder, RULE_FILE_NAME)
        if os.path.isfile(path):
            return path
    return None


def load_rule_file(path):
    """Class names indexed by id from a rule file; ids must be 0..N-1."""
    try:
        with open(path, encoding="utf-8") as f:
            rules = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read rule file {path}: {e}") from None
    if not isinstance(rules, dict) or not rules:
        raise DataError(f"rule file {path} must map ids to names, e.g. {{\"0\": \"其他垃圾/烟蒂\"}}")
    try:
        ids = sorted(int(k) for k in rules)
    except ValueError:
        raise DataError(f"rule file {path} has a non-integer id: {sorted(rules)[:5]}") from None
    if ids != list(range(len(ids))):
        raise DataError(f"rule file {path}: ids must be 0..{len(ids) - 1} without gaps, got {ids[:10]}...")
    return [str(rules[str(i)]) for i in ids]
