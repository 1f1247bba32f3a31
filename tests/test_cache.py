"""The decoded-image cache (tools/training/cache.py): RAM and disk, warm runs, invalidation, "auto"."""

import concurrent.futures
import logging
import os

import numpy as np
import pytest

from support.datagen import make_image, make_txt_dataset
from tools.contract import resize_size
from tools.data.layout import load_dataset
from tools.images import ImageDecodeError
from tools.training import cache as decoded
from tools.training.cache import CACHE_MODES, DecodedCache, decode_square, manifest_key, open_cache


@pytest.fixture
def small(tmp_path):
    """6 photos (2 classes x 3) in their own folder: tests may change them."""
    return load_dataset(make_txt_dataset(str(tmp_path / "data"), per_class=3, num_classes=2)).paths


@pytest.fixture
def decodes(monkeypatch):
    """The paths the cache decodes, in order (decode_square counted)."""
    calls = []
    real = decoded.decode_square
    monkeypatch.setattr(decoded, "decode_square", lambda path, size: calls.append(path) or real(path, size))
    return calls


def _cache_files(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _full_pass(cache):
    return [np.array(cache.get(i)) for i in range(len(cache))]


def test_modes():
    assert CACHE_MODES == ("auto", "ram", "disk", "none")


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_miss_then_hit_and_a_warm_pass_decodes_nothing(small, decodes, tmp_path, mode):
    cache = open_cache(small, 32, mode, folder=str(tmp_path / "cache"), log=lambda line: None)
    assert isinstance(cache, DecodedCache) and cache.kind == mode and len(cache) == 6
    first = _full_pass(cache)
    assert (cache.hits, cache.misses) == (0, 6) and len(decodes) == 6
    second = _full_pass(cache)
    assert (cache.hits, cache.misses) == (6, 6) and len(decodes) == 6  # warm: no decoding
    side = resize_size(32)
    for a, b, path in zip(first, second, small):
        assert a.shape == (side, side, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, decode_square(path, 32))
    line = cache.describe()
    assert f"{side}x{side}" in line and "6 cached" in line and "6 hits" in line and "0.0 MB" in line
    with pytest.raises(ValueError):
        cache.get(0)[0, 0, 0] = 1  # the cached pixels are read-only


def test_disk_cache_survives_a_new_run(small, decodes, tmp_path):
    folder = str(tmp_path / "cache")
    lines = []
    first = open_cache(small, 32, "disk", folder=folder, name="train", log=lines.append)
    pixels = _full_pass(first)
    first.flush()
    files = _cache_files(folder)
    assert len(files) == 2 and all(f.startswith(f"train_{resize_size(32)}px_") for f in files)
    assert "0 already cached" in lines[0]
    del first
    decodes.clear()
    again = open_cache(small, 32, "disk", folder=folder, name="train", log=lines.append)  # a second "run"
    assert "6 already cached" in lines[1]
    for a, b in zip(pixels, _full_pass(again)):
        np.testing.assert_array_equal(a, b)
    assert decodes == [] and (again.hits, again.misses) == (6, 0)
    assert _cache_files(folder) == files


def test_state_is_saved_every_few_fills_atomically(small, decodes, tmp_path, monkeypatch):
    monkeypatch.setattr(decoded, "FLUSH_EVERY", 4)
    folder = str(tmp_path / "cache")
    cache = open_cache(small, 32, "disk", folder=folder, log=lambda line: None)
    for i in range(5):
        cache.get(i)
    assert not any(f.endswith(".tmp") for f in _cache_files(folder))
    saved = np.load(cache.state_file)
    assert saved.tolist() == [1, 1, 1, 1, 0, 0]  # written at the 4th fill, not since (no flush())
    decodes.clear()
    warm = open_cache(small, 32, "disk", folder=folder, log=lambda line: None)  # killed before the epoch ended
    _full_pass(warm)
    assert decodes == small[4:]


@pytest.mark.parametrize("change", ["touch", "replace", "add", "remove", "input_size"])
def test_a_changed_data_set_rebuilds_the_disk_cache(small, decodes, tmp_path, change):
    folder = str(tmp_path / "cache")
    quiet = dict(folder=folder, log=lambda line: None)
    paths, size = list(small), 32
    old = open_cache(paths, size, "disk", **quiet)
    _full_pass(old)
    old.flush()
    old_files, old_key = _cache_files(folder), manifest_key(small, 32)
    if change == "touch":
        st = os.stat(paths[2])
        os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    elif change == "replace":  # another photo under the same name
        make_image(1, np.random.default_rng(9), (90, 70)).save(paths[2], quality=80)
    elif change == "add":
        extra = os.path.join(os.path.dirname(paths[0]), "extra.jpg")
        make_image(0, np.random.default_rng(9), (80, 60)).save(extra)
        paths.append(extra)
    elif change == "remove":
        paths.pop(3)
    else:
        size = 48
    assert manifest_key(paths, size) != old_key
    decodes.clear()
    new = open_cache(paths, size, "disk", **quiet)
    assert new.file != old.file and new.counts() == (0, 0)
    pixels = _full_pass(new)
    assert decodes == paths  # a full rebuild
    new.flush()
    files = _cache_files(folder)
    assert len(files) == 2 and not set(files) & set(old_files)  # the older cache is gone
    if change == "replace":
        np.testing.assert_array_equal(pixels[2], decode_square(paths[2], 32))


def test_an_unchanged_data_set_keeps_its_key(small):
    assert manifest_key(small, 32) == manifest_key(list(small), 32)
    assert manifest_key(small, 32) != manifest_key(small[::-1], 32)  # the order is the slot order


def test_train_and_val_caches_share_a_folder(small, tmp_path):
    folder = str(tmp_path / "cache")
    quiet = dict(folder=folder, log=lambda line: None)
    train = open_cache(small[:4], 32, "disk", name="train", **quiet)
    val = open_cache(small[4:], 32, "disk", name="val", **quiet)
    _full_pass(train), _full_pass(val)
    train.flush(), val.flush()
    assert len(_cache_files(folder)) == 4 and os.path.exists(train.file) and os.path.exists(val.file)


def test_auto_picks_ram_for_small_data_and_disk_when_memory_is_short(small, tmp_path, monkeypatch):
    lines = []
    folder = str(tmp_path / "cache")
    cache = open_cache(small, 32, "auto", folder=folder, name="train", log=lines.append)
    assert cache.kind == "ram" and _cache_files(folder) == []
    assert lines[-1].startswith("train cache: RAM, 6 images at 37x37") and "auto: under" in lines[-1]
    monkeypatch.setattr(decoded, "available_memory", lambda: 10_000)  # a quarter: 2,500 bytes < 6*37*37*3
    cache = open_cache(small, 32, "auto", folder=folder, name="train", log=lines.append)
    assert cache.kind == "disk" and lines[-1].startswith("train cache: disk") and "auto: over" in lines[-1]
    assert open_cache(small, 32, "auto", folder=None, log=lines.append).kind == "ram"  # no folder: RAM
    monkeypatch.setattr(decoded, "available_memory", lambda: None)  # unknown: RAM below 1 GiB
    assert open_cache(small, 32, "auto", folder=folder, log=lines.append).kind == "ram"
    assert "auto: under 1024 MB, memory unknown" in lines[-1], lines[-1]
    monkeypatch.setattr(decoded, "UNKNOWN_MEMORY_RAM_LIMIT", 10_000)  # the same rule, a limit under 6*37*37*3
    assert open_cache(small, 32, "auto", folder=folder, log=lines.append).kind == "disk"
    assert "auto: over 0 MB, memory unknown" in lines[-1], lines[-1]


def test_available_memory_is_what_this_machine_has_free():
    avail, total = decoded.available_memory(), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < avail <= total
    if os.path.exists("/proc/meminfo"):  # Linux: MemAvailable, which moves a little between two reads
        with open("/proc/meminfo") as f:
            meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        assert abs(avail - meminfo["MemAvailable"]) < total // 20, (avail, meminfo["MemAvailable"])


def test_none_and_bad_modes(small, tmp_path):
    assert open_cache(small, 32, "none", folder=str(tmp_path)) is None
    with pytest.raises(ValueError, match="auto, ram, disk, none"):
        open_cache(small, 32, "gpu")
    with pytest.raises(ValueError, match="folder"):
        open_cache(small, 32, "disk")


def test_a_full_disk_means_no_cache(small, tmp_path, monkeypatch):
    monkeypatch.setattr(decoded, "_disk_free", lambda folder: 1000)
    monkeypatch.setattr(decoded, "available_memory", lambda: 10_000)
    lines = []
    folder = str(tmp_path / "cache")
    assert open_cache(small, 32, "disk", folder=folder, log=lines.append) is None
    assert "does not fit" in lines[-1] and "no cache" in lines[-1]
    assert open_cache(small, 32, "auto", folder=folder, log=lines.append) is None  # memory is short too
    assert "does not fit" in lines[-1] and "auto: over" in lines[-1] and _cache_files(folder) == []


def test_an_unreadable_image_is_remembered_as_bad(small, decodes, tmp_path):
    with open(small[1], "wb") as f:
        f.write(b"\xff\xd8\xff garbage")
    folder = str(tmp_path / "cache")
    cache = open_cache(small, 32, "disk", folder=folder, log=lambda line: None)
    for _ in range(2):
        with pytest.raises(ImageDecodeError, match="not an image"):
            cache.get(1)
    assert decodes == [small[1]] and cache.counts() == (0, 1)
    _full_pass_except_bad = [cache.get(i) for i in range(len(small)) if i != 1]
    assert len(_full_pass_except_bad) == 5
    cache.flush()
    decodes.clear()
    again = open_cache(small, 32, "disk", folder=folder, log=lambda line: None)
    with pytest.raises(ImageDecodeError, match="unreadable"):
        again.get(1)
    assert decodes == [] and again.counts() == (5, 1)


def test_a_missing_file_is_not_saved_as_bad(small, decodes, tmp_path):
    folder = str(tmp_path / "cache")
    os.rename(small[0], small[0] + ".away")
    cache = open_cache(small, 32, "disk", folder=folder, log=lambda line: None)
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            cache.get(0)
    assert decodes == [small[0]] and cache.counts() == (0, 1)
    cache.flush()
    assert np.load(cache.state_file)[0] == 0  # tried again by the next run (whose key differs anyway)


def test_worker_threads_fill_distinct_slots(small, decodes):
    cache = open_cache(small * 4, 32, "ram", log=lambda line: None)  # 24 slots
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: np.array(cache.get(i)), range(24)))
    for i, square in enumerate(got):
        np.testing.assert_array_equal(square, decode_square(small[i % 6], 32))
    assert cache.misses == 24 and cache.counts() == (24, 0)


def test_the_loader_flushes_at_epoch_end(small, decodes, tmp_path):
    from tools.training.loader import GarbageClassifySequence

    folder = str(tmp_path / "cache")
    labels = [i % 2 for i in range(6)]
    cache = open_cache(small, 32, "disk", folder=folder, log=lambda line: None)
    seq = GarbageClassifySequence(small, labels, 2, batch_size=4, input_size=32, training=True, cache=cache)
    first = [seq[i][0] for i in range(len(seq))]
    seq.on_epoch_end()
    assert np.load(cache.state_file).tolist() == [1] * 6
    decodes.clear()
    warm = GarbageClassifySequence(small, labels, 2, batch_size=4, input_size=32, training=True,
                                   cache=open_cache(small, 32, "disk", folder=folder, log=lambda line: None))
    for i, x in enumerate(first):
        np.testing.assert_array_equal(warm[i][0], x)
    assert decodes == []


def test_open_cache_logs_one_line(small, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="tools.training.cache"):
        open_cache(small, 32, "ram")
    assert len(caplog.records) == 1 and "RAM" in caplog.text and "MB" in caplog.text


def test_a_cache_folder_that_cannot_be_made_is_one_clear_data_error(small, tmp_path):
    from tools.data import DataError
    from tools.training.data import data_flow

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would go")
    with pytest.raises(DataError, match=r"cannot keep the decode cache in .*not_a_folder.*--cache ram or --cache none"):
        data_flow(os.path.dirname(small[0]), batch_size=4, input_size=32, cache="disk",
                  cache_dir=str(blocker / "cache"), print_fn=lambda *a: None)


def test_a_half_written_sparse_cache_file_is_not_counted_as_space_already_taken(small, tmp_path, monkeypatch):
    """The memmap file has its full size from the start (sparse): only its written blocks count."""
    first = open_cache(small, 64, mode="disk", folder=str(tmp_path))
    need = len(small) * resize_size(64) ** 2 * 3
    assert first is not None and os.path.getsize(first.file) >= need
    assert os.stat(first.file).st_blocks * 512 < need // 2, "this file system does not keep the file sparse"
    monkeypatch.setattr(decoded, "_disk_free", lambda folder: need // 2 + decoded.DISK_MARGIN)
    assert open_cache(small, 64, mode="disk", folder=str(tmp_path)) is None  # half of the cache is not room enough
