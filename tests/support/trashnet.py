"""Where the shared TrashNet copy lies: ../shared/data/trashnet_v2 beside the checkout (1,769 real photos
in the project's data layout; absent in a user's clone). One place for the tests (conftest's
trashnet_dir), the benchmarks and docs/images/make_screenshot.py (their --data_dir default)."""

import os

from support import ROOT

TRASHNET_ROOT = os.path.join(ROOT, "..", "shared", "data", "trashnet_v2")  # holds the rule file
TRASHNET = os.path.join(TRASHNET_ROOT, "train_data_v2")  # the photos and their label files
