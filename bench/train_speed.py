"""Does train.py train at the speed of the model, or do the data path and the saves hold it back? One run:

    python bench/train_speed.py                                  # 2 cores: 64 px, 40 TrashNet photos/class
    python bench/train_speed.py --save_check_epochs 10           # + blocking time of the saves at 224 px
    python bench/train_speed.py --host_path                      # + the null-model ceiling (bench/host_path.py)
    python bench/train_speed.py --baseline_root /tmp/old         # + the same train.py run of another checkout
    KERAS_BACKEND=jax python bench/train_speed.py --input_size 224 --per_class 0 --mixed_precision bfloat16 \\
        --batch_size 64 --epochs 6 --threads 1,2,8,16 --host_path # a GPU machine (bench/gpu_check.sh)

1. the loader (tools/training/loader.py) in training mode, images/s per thread count, with a cold
   decode cache (every photo decoded) and a warm one (none decoded);
2. the model's training step alone (the classifier behind the --augment block, compiled as
   train.py compiles it) on synthetic uint8 batches, after warm-up, measured BEFORE and AFTER the
   train.py run: a busy machine shows as the spread of the two, not as a finding;
3. train.py end to end on the photos, and where each steady epoch's wall time went (its epoch clock,
   OUTPUT_DIR/run.json): waiting for data, steps, validation, best.h5, the backup, history, the rest.
   The headline: training images / the whole wall time of the steady epochs (validation and saves
   included: what a user waits for) divided by the synthetic step rate of the same run;
4. --save_check_epochs N: a 224 px run of N epochs with --backup_every 0 (a backup after every epoch,
   the worst case) and one with the default: seconds per epoch the training thread spent saving;
5. --host_path: bench/host_path.py, train.py's path with a model that costs nothing (its ceiling);
6. --baseline_root: the same train.py run of another checkout (its whole-run wall time).
"""

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.augmentation import build_augmentation, training_model  # noqa: E402
from models.classifier import build_classifier, set_trainable_from  # noqa: E402
from support.trashnet import TRASHNET  # noqa: E402
from tools.data.layout import load_dataset  # noqa: E402
from tools.data.rules import find_rule_file  # noqa: E402
from tools.training.cache import open_cache  # noqa: E402
from tools.distributed.devices import use_jit  # noqa: E402
from tools.training.loader import GarbageClassifySequence  # noqa: E402
from tools.training.phases import compile_model  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=TRASHNET, help="labelled photos, garbage_classify_v2 layout "
                                                         "(default: ../shared TrashNet)")
    p.add_argument("--per_class", type=int, default=40, help="photos per class, 0 = all (default: %(default)s)")
    p.add_argument("--input_size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--augment", default="none", help="train.py --augment (default: %(default)s)")
    p.add_argument("--mixed_precision", default="off", help="train.py --mixed_precision (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=6, help="train.py epochs, >= 2 (default: %(default)s)")
    p.add_argument("--threads", default=None, help="loader thread counts, e.g. 1,2,16 (default: 1, 2, cores)")
    p.add_argument("--steps", type=int, default=20, help="timed synthetic training steps (default: %(default)s)")
    p.add_argument("--save_check_epochs", type=int, default=0,
                   help="also time the saves in two 224 px runs of this many epochs, 36 photos (0: skip)")
    p.add_argument("--host_path", action="store_true", help="also run bench/host_path.py (the null-model ceiling)")
    p.add_argument("--baseline_root", default=None,
                   help="another checkout (e.g. git archive of an older commit) whose train.py runs alike")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def subset(data_dir, per_class, dest):
    """Links to `per_class` photos of each class (+ label files, rule file) in `dest`; its data folder."""
    ds = load_dataset(data_dir)
    folder = os.path.join(dest, "train_data_v2")
    os.makedirs(folder)
    seen, paths, labels = {}, [], []
    for path, label in zip(ds.paths, ds.labels):
        if per_class and seen.get(label, 0) >= per_class:
            continue
        seen[label] = seen.get(label, 0) + 1
        paths.append(path)
        labels.append(int(label))
        stem = os.path.splitext(path)[0]
        for src in (path, stem + ".txt"):
            if os.path.exists(src):
                os.symlink(os.path.abspath(src), os.path.join(folder, os.path.basename(src)))
    rule = find_rule_file(data_dir)
    if rule:
        os.symlink(os.path.abspath(rule), os.path.join(dest, os.path.basename(rule)))
    return folder, paths, labels, len(ds.class_names)


def loader_rates(paths, labels, num_classes, args, threads):
    """{threads: (cold images/s, warm images/s)} of the training loader with a RAM decode cache."""
    out = {}
    for w in threads:
        cache = open_cache(paths, args.input_size, mode="ram")
        seq = GarbageClassifySequence(paths, labels, num_classes, batch_size=args.batch_size,
                                      input_size=args.input_size, training=True, cache=cache)
        rates = []
        for _ in ("cold", "warm"):
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(w) as pool:
                n = sum(x.shape[0] for x, _ in pool.map(seq.__getitem__, range(len(seq))))
            rates.append(n / (time.perf_counter() - start))
            seq.on_epoch_end()
        out[w] = tuple(rates)
    return out


def step_rate(num_classes, args):
    """Images/s of the compiled training step on synthetic uint8 batches, warm-up excluded."""
    if args.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")
    model = build_classifier(num_classes, args.input_size, weights=None)
    set_trainable_from(model, 1, batchnorm=True)
    trainer = training_model(model, build_augmentation(args.augment, args.input_size, seed=1))
    compile_model(trainer, 1e-3, num_classes, use_jit("auto"), weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch_size, args.input_size, args.input_size, 3), dtype=np.uint8)
    y = np.eye(num_classes, dtype=np.float32)[np.arange(args.batch_size) % num_classes]
    for _ in range(5):  # compile + settle
        trainer.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = trainer.train_on_batch(x, y)
    float(np.asarray(loss if np.ndim(loss) == 0 else loss[0]))  # wait for the device
    keras.mixed_precision.set_global_policy("float32")
    return args.batch_size * args.steps / (time.perf_counter() - start)


def run_train(root, data_dir, args, extra, input_size=None, epochs=None):
    """train.py of checkout `root` on `data_dir`: (wall s, its run.json or None, stdout)."""
    out = tempfile.mkdtemp(prefix="bench_train_speed_")
    cmd = [sys.executable, "train.py", "--data_dir", data_dir, "--weights", "none", "--input_size",
           str(input_size or args.input_size), "--batch_size", str(args.batch_size), "--epochs", str(epochs or args.epochs),
           "--patience", "1000", "--output_dir", out, "--no_resume", *extra]
    if args.mixed_precision != "off":
        cmd += ["--mixed_precision", args.mixed_precision]
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"error: train.py in {root} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    record = os.path.join(out, "run.json")
    record = json.load(open(record, encoding="utf-8")) if os.path.exists(record) else None
    shutil.rmtree(out, ignore_errors=True)
    return wall, record, r.stdout


def epoch_table(epochs):
    """Rows (name, seconds per steady epoch) of where the steady epochs' wall time went."""
    n = len(epochs)
    names = sorted({k for e in epochs for k in e["callbacks"]})
    rows = [("whole epoch (wall)", sum(e["wall"] for e in epochs) / n),
            ("  waiting for data", sum(e["data"] for e in epochs) / n),
            ("  training steps", sum(e["steps"] for e in epochs) / n),
            ("  validation", sum(e["validation"] for e in epochs) / n)]
    rows += [(f"  callback: {k}", sum(e["callbacks"].get(k, 0.0) for e in epochs) / n) for k in names]
    other = [e["wall"] - e["data"] - e["steps"] - e["validation"] - sum(e["callbacks"].values()) for e in epochs]
    return rows + [("  other (Keras, progress bar)", sum(other) / n)]


def saving_seconds(record):
    """Seconds per epoch the training thread spent in best.h5's and the backup's callbacks (snapshots, queueing,
    the wait for the writer at the end), over every epoch of the run."""
    epochs = record["state"]["epochs"]
    return sum(e["callbacks"].get("best.h5", 0.0) + e["callbacks"].get("backup", 0.0) for e in epochs) / len(epochs)


def main(args):
    if args.epochs < 2:
        print("error: --epochs must be >= 2 (the first epoch compiles; the steady rate needs another)", file=sys.stderr)
        return 2
    if not os.path.isdir(args.data_dir):
        print(f"error: no photos at {args.data_dir} (the shared TrashNet copy, or pass --data_dir)", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    threads = sorted({int(t) for t in args.threads.split(",")} if args.threads else {1, 2, cores})
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, paths, labels, num_classes = subset(args.data_dir, args.per_class, tmp)
        print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, backend "
              f"{keras.backend.backend()}; {len(paths)} photos ({num_classes} classes), {args.input_size} px, "
              f"batch {args.batch_size}, --augment {args.augment}, --mixed_precision {args.mixed_precision}",
              flush=True)
        loader = loader_rates(paths, labels, num_classes, args, threads)
        step_before = step_rate(num_classes, args)
        wall, record, _ = run_train(ROOT, data_dir, args, ["--augment", args.augment, "--cache", "ram"])
        step_after = step_rate(num_classes, args)
        steady = [e for e in record["state"]["epochs"] if not e["compiled"]]
        images = sum(e["images"] for e in steady)
        whole = images / sum(e["wall"] for e in steady)
        in_steps = images / sum(e["steps"] for e in steady)
        if args.save_check_epochs:
            small = subset(args.data_dir, 6, os.path.join(tmp, "small"))[0]
            for name, extra in (("every epoch", ["--backup_every", "0"]), ("default", [])):
                _, rec, _ = run_train(ROOT, small, args, ["--augment", args.augment, "--cache", "ram", *extra],
                                      input_size=224, epochs=args.save_check_epochs)
                key = name.replace(' ', '_')
                figures[f"saving_s_per_epoch_224px_backup_{key}"] = saving_seconds(rec)
                for what in ("backup", "best.h5"):  # the writer thread's seconds per file, in the background
                    times = [w["seconds"] for w in rec.get("writes", []) if what in w["what"]]
                    if times:
                        figures[f"background_write_s_{what}_{key}"] = sum(times) / len(times)
        if args.host_path:
            host_json = os.path.join(tmp, "host.json")
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "host_path.py"), "--data_dir", args.data_dir,
                            "--json", host_json], check=True)
            figures["host_path"] = json.load(open(host_json))
        base = run_train(args.baseline_root, data_dir, args, []) if args.baseline_root else None
    low, high = sorted((step_before, step_after))
    rows = [(f"loader, {w} thread(s), cold cache", cold) for w, (cold, _) in loader.items()]
    rows += [(f"loader, {w} thread(s), warm cache", warm) for w, (_, warm) in loader.items()]
    rows += [("training step, synthetic uint8 batches, compiled: before train.py", step_before),
             ("training step, synthetic uint8 batches, compiled: after train.py", step_after),
             (f"train.py, steady epochs ({len(steady)}): training steps alone", in_steps),
             (f"train.py, steady epochs ({len(steady)}): whole epochs (validation, saves)", whole)]
    print(f"\n{'what':<72} {'images/s':>9}")
    for name, rate in rows:
        print(f"{name:<72} {rate:>9.1f}")
    print(f"\nwhere a steady epoch's wall time goes (train.py's epoch clock, mean of {len(steady)} epochs):")
    table = epoch_table(steady)
    for name, seconds in table:
        print(f"  {name:<40} {seconds:>7.3f} s  {100 * seconds / table[0][1]:>5.1f} %")
    figures.update({"rows": rows, "epoch_table": table, "whole_over_step": [whole / high, whole / low],
                    "steps_over_step": [in_steps / high, in_steps / low],
                    "warm_loader_over_step": max(warm for _, warm in loader.values()) / high,
                    "train_wall_s": wall})
    print(f"\nheadline: train.py whole steady epochs / synthetic step = {whole / high:.2f} .. {whole / low:.2f} "
          f"(step before {step_before:.1f}, after {step_after:.1f} images/s); its steps alone / synthetic step = "
          f"{in_steps / high:.2f} .. {in_steps / low:.2f}")
    print(f"warm loader ({max(loader)} threads) / synthetic step: {figures['warm_loader_over_step']:.0f}x")
    for key in [k for k in figures if k.startswith(("saving_s_per_epoch", "background_write_s"))]:
        print(f"{key.replace('_', ' ')}: {figures[key]:.3f} s")
    if "host_path" in figures:
        h = figures["host_path"]
        print(f"host path, null model ({h['photos']} photos, {h['input_size']} px, batch {h['batch_size']}): "
              f"{h['images_per_s_whole_epochs']:.0f} images/s over whole steady epochs")
    if base:
        figures["baseline_wall_s"] = base[0]
        print(f"whole train.py run, wall: this checkout {wall:.0f} s, {args.baseline_root} {base[0]:.0f} s "
              f"({base[0] / wall:.2f}x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
