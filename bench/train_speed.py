"""Does train.py train at the speed of the model, or do the data path and the saves hold it back? One run:

    python bench/train_speed.py                                  # 2 cores: 64 px, 40 TrashNet photos/class
    python bench/train_speed.py --save_check_epochs 10           # + blocking time of the saves at 224 px
    python bench/train_speed.py --host_path                      # + the null-model ceiling (bench/host_path.py)
    python bench/train_speed.py --baseline_root /tmp/old         # + the same train.py run of another checkout
    KERAS_BACKEND=jax python bench/train_speed.py --input_size 224 --per_class 0 --mixed_precision bfloat16 \\
        --batch_size 64 --epochs 6 --rounds 1 --threads 1,2,8,16 --host_path  # a GPU (bench/gpu_check.sh)

1. the loader (tools/training/loader.py) in training mode, images/s per thread count, with a cold
   decode cache (every photo decoded) and a warm one (none decoded);
2. --rounds R rounds, interleaved, each in a fresh process: the model's training step alone (the
   classifier behind the --augment block, compiled as train.py compiles it) on synthetic uint8 batches
   after warm-up, then train.py end to end on the photos; one more step measurement closes the last
   round, so every train.py run has a bare step just BEFORE and just AFTER it. A busy machine (this
   one is a VM: its speed drifts by tens of percent over minutes) shows as the spread of the two and
   as the hypervisor's steal share of each window (/proc/stat), not as a finding;
3. where each steady epoch's wall time went (train.py's epoch clock, OUTPUT_DIR/run.json): waiting for
   data, steps, validation, best.h5, the backup, history, the rest. The headline, per round: training
   images / the whole wall time of the steady epochs (validation and saves included: what a user
   waits for) divided by the mean of that round's two bare-step rates; printed as the median of
   the rounds and their range;
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
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of (bare step, train.py), >= 1; the headline is their median "
                        "(default: %(default)s)")
    p.add_argument("--step_only", action="store_true",
                   help="only time the bare step on synthetic batches and print its images/s as JSON "
                        "(what each round runs in a fresh process)")
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


def cpu_times():
    """(steal, total) jiffies of all CPUs since boot from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before, after):
    """The share of CPU time the hypervisor took from this machine between two cpu_times(), or None."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def step_process(data_dir, args):
    """(images/s, steal share) of the bare step timed in a fresh process, as train.py runs in one."""
    cmd = [sys.executable, os.path.abspath(__file__), "--step_only", "--data_dir", data_dir, "--input_size",
           str(args.input_size), "--batch_size", str(args.batch_size), "--augment", args.augment,
           "--mixed_precision", args.mixed_precision, "--steps", str(args.steps)]
    before = cpu_times()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"error: the bare step failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["images_per_s"], steal_share(before, cpu_times())


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


def train_round(data_dir, args):
    """One train.py run: its steady epochs' rates, clock, wall time and the steal share of its window."""
    before = cpu_times()
    wall, record, _ = run_train(ROOT, data_dir, args, ["--augment", args.augment, "--cache", "ram"])
    steady = [e for e in record["state"]["epochs"] if not e["compiled"]]
    images = sum(e["images"] for e in steady)
    return {"whole": images / sum(e["wall"] for e in steady), "steps": images / sum(e["steps"] for e in steady),
            "steady": steady, "wall_s": wall, "steal": steal_share(before, cpu_times())}


def _pct(share):
    return "  n/a" if share is None else f"{100 * share:4.1f}%"


def main(args):
    if args.step_only:
        num_classes = len(load_dataset(args.data_dir).class_names)
        print(json.dumps({"images_per_s": step_rate(num_classes, args)}))
        return 0
    if args.epochs < 2:
        print("error: --epochs must be >= 2 (the first epoch compiles; the steady rate needs another)", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"error: --rounds must be >= 1. Received: --rounds {args.rounds}", file=sys.stderr)
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
              f"batch {args.batch_size}, --augment {args.augment}, --mixed_precision {args.mixed_precision}, "
              f"{args.rounds} round(s)", flush=True)
        loader = loader_rates(paths, labels, num_classes, args, threads)
        bare = [step_process(data_dir, args)]
        rounds = []
        for r in range(args.rounds):
            x = train_round(data_dir, args)
            bare.append(step_process(data_dir, args))
            b = (bare[r][0] + bare[r + 1][0]) / 2
            x.update(whole_over_step=x["whole"] / b, steps_over_step=x["steps"] / b)
            rounds.append(x)
            print(f"round {r + 1}: bare step {bare[r][0]:.1f} -> {bare[r + 1][0]:.1f} images/s, train.py steps "
                  f"{x['steps']:.1f}, whole epochs {x['whole']:.1f}: whole / bare {x['whole_over_step']:.2f}, "
                  f"steps / bare {x['steps_over_step']:.2f}; steal {_pct(x['steal'])}", flush=True)
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
    whole_ratio = [x["whole_over_step"] for x in rounds]
    steps_ratio = [x["steps_over_step"] for x in rounds]
    steady = [e for x in rounds for e in x["steady"]]
    rows = [(f"loader, {w} thread(s), cold cache", cold) for w, (cold, _) in loader.items()]
    rows += [(f"loader, {w} thread(s), warm cache", warm) for w, (_, warm) in loader.items()]
    print(f"\n{'what':<72} {'images/s':>9}")
    for name, rate in rows:
        print(f"{name:<72} {rate:>9.1f}")
    print(f"\n{'round':<6} {'bare before':>11} {'train.py steps':>14} {'whole epochs':>12} {'bare after':>10} "
          f"{'whole/bare':>10} {'steps/bare':>10} {'steal: bare, train.py, bare':>28}")
    for r, x in enumerate(rounds):
        print(f"{r + 1:<6} {bare[r][0]:>11.1f} {x['steps']:>14.1f} {x['whole']:>12.1f} {bare[r + 1][0]:>10.1f} "
              f"{whole_ratio[r]:>10.2f} {steps_ratio[r]:>10.2f} "
              f"{_pct(bare[r][1]):>10} {_pct(x['steal']):>8} {_pct(bare[r + 1][1]):>8}")
    print(f"\nwhere a steady epoch's wall time goes (train.py's epoch clock, mean of {len(steady)} epochs "
          f"over {len(rounds)} round(s)):")
    table = epoch_table(steady)
    for name, seconds in table:
        print(f"  {name:<40} {seconds:>7.3f} s  {100 * seconds / table[0][1]:>5.1f} %")
    figures.update({"rows": rows, "epoch_table": table, "rounds": [
        {"bare_before": bare[r][0], "bare_after": bare[r + 1][0], "steps": x["steps"], "whole": x["whole"],
         "whole_over_step": whole_ratio[r], "steps_over_step": steps_ratio[r], "train_wall_s": x["wall_s"],
         "steal": {"bare_before": bare[r][1], "train": x["steal"], "bare_after": bare[r + 1][1]}}
        for r, x in enumerate(rounds)],
        "whole_over_step_median": float(np.median(whole_ratio)), "whole_over_step_range": [min(whole_ratio), max(whole_ratio)],
        "steps_over_step_median": float(np.median(steps_ratio)), "steps_over_step_range": [min(steps_ratio), max(steps_ratio)],
        "warm_loader_over_step": max(warm for _, warm in loader.values()) / max(b for b, _ in bare),
        "train_wall_s": rounds[0]["wall_s"]})
    print(f"\nheadline: train.py whole steady epochs / bare step = {figures['whole_over_step_median']:.2f} "
          f"(median of {len(rounds)} round(s), range {min(whole_ratio):.2f} .. {max(whole_ratio):.2f}); its steps "
          f"alone / bare step = {figures['steps_over_step_median']:.2f} ({min(steps_ratio):.2f} .. {max(steps_ratio):.2f})")
    print(f"warm loader ({max(loader)} threads) / bare step: {figures['warm_loader_over_step']:.0f}x")
    for key in [k for k in figures if k.startswith(("saving_s_per_epoch", "background_write_s"))]:
        print(f"{key.replace('_', ' ')}: {figures[key]:.3f} s")
    if "host_path" in figures:
        h = figures["host_path"]
        print(f"host path, null model ({h['photos']} photos, {h['input_size']} px, batch {h['batch_size']}): "
              f"{h['images_per_s_whole_epochs']:.0f} images/s over whole steady epochs")
    if base:
        figures["baseline_wall_s"] = base[0]
        print(f"whole train.py run, wall: this checkout {rounds[0]['wall_s']:.0f} s (round 1), {args.baseline_root} "
              f"{base[0]:.0f} s ({base[0] / rounds[0]['wall_s']:.2f}x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
