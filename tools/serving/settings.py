"""The app's settings, defined once: name, default, type and flag help of each.

server.py builds its flags from SETTINGS (add_flags) and its app config from the parsed flags
(from_flags); create_app() starts from DEFAULTS and reads GARBAGE_<NAME> from the environment
(settings_from_env, through Flask's Config.from_prefixed_env) for any WSGI server.
"""

import dataclasses
import os

from flask import Config

from tools.calibration import THRESHOLD_HELP
from tools.contract import CROP_CHOICES, DEFAULT_CROPS, DEFAULT_MODEL
from tools.images import MAX_PIXELS
from tools.inference import DEFAULT_TOP_K

#: The environment variables' prefix: GARBAGE_MODEL sets MODEL.
ENV_PREFIX = "GARBAGE"


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # the app.config key; GARBAGE_<name> in the environment
    default: object
    type: type = str  # what an environment value becomes (when the default is not None)
    help: str = None  # the server.py flag's help; None: no flag of its own here
    flag: str = None  # the server.py flag (its value times `scale` is the setting)
    scale: float = 1  # a flag in MB (2 ** 20) or megapixels (1e6) of a setting in bytes or pixels
    choices: tuple = None
    metavar: str = None

    @property
    def env(self):
        return f"{ENV_PREFIX}_{self.name}"

    def parse(self, text):
        """An environment value as the setting: a number setting's converted like its default."""
        return text if self.default is None else self.type(text)


# --collect DIR (tools/serving/feedback.py): photos wait COLLECT_TTL_S seconds for feedback, at most
# COLLECT_PENDING of them and COLLECT_PENDING_MB in all (the oldest make room); DIR is capped at COLLECT_MAX_MB.
SETTINGS = (
    Setting("MODEL", DEFAULT_MODEL, flag="--model"),  # --model/--model_sha256: tools.model_source.add_model_arguments
    Setting("MODEL_SHA256", None, flag="--model_sha256"),
    Setting("CROPS", DEFAULT_CROPS, int, "deterministic crops per photo (default: %(default)s)", "--crops",
            choices=CROP_CHOICES),
    Setting("TOP_K", DEFAULT_TOP_K, int),
    # None: the threshold in the model's labels.json (tools/calibration.py)
    Setting("UNSURE_THRESHOLD", None, float, THRESHOLD_HELP, "--threshold"),
    Setting("MAX_CONTENT_LENGTH", 10 * 1024 * 1024, int, "largest upload in MB (default: %(default)s)", "--max_mb",
            scale=2 ** 20),
    Setting("MAX_PIXELS", MAX_PIXELS, int, "largest photo in megapixels decoded; larger ones get 413 before any "
            "decoding (default: %(default)s)", "--max_mpx", scale=1e6),
    Setting("BATCH_MAX", 8, int, "most photos per model call (default: %(default)s)", "--batch_max"),
    Setting("BATCH_WAIT_MS", 5.0, float, "how long a photo waits for company (default: %(default)s)",
            "--batch_wait_ms"),
    Setting("SAVE_UPLOADS", None, str, "keep each photo (generated name) + JSON of the answer", "--save_uploads",
            metavar="DIR"),
    Setting("COLLECT_DIR", None, str, "collect training data: the pages ask whether each answer was right, and a "
            "confirmed or corrected photo is saved into DIR with its label (garbage_classify_v2 layout, with the "
            "model's rule file and feedback.csv); train on it with train.py --data_dir. Off by default: without it "
            "no photo is kept", "--collect", metavar="DIR"),
    Setting("COLLECT_MAX_MB", 1024.0, float, "with --collect: most MB the DIR may hold; feedback beyond it gets 507 "
            "(default: %(default)s)", "--collect_max_mb"),
    Setting("SERVER_CAMERA", None, str, "kiosk mode: a camera wired to the server (OpenCV index, or a video file) "
            "at /video_feed and /shot_photo", "--server_camera", metavar="INDEX"),
    Setting("COLLECT_TTL_S", 600.0, float),
    Setting("COLLECT_PENDING", 200, int),
    Setting("COLLECT_PENDING_MB", 100.0, float),
)
#: Every setting of the app and its default.
DEFAULTS = {s.name: s.default for s in SETTINGS}


def _dest(setting):
    return setting.flag.lstrip("-")


def add_flags(parser):
    """server.py's flag of each setting that has its help here (--model/--model_sha256 come from
    add_model_arguments), its default in the flag's unit."""
    for s in SETTINGS:
        if s.flag is None or s.help is None:
            continue
        default = s.default
        if s.scale != 1:
            default = default // s.scale if default % s.scale == 0 else default / s.scale
        kwargs = {"choices": s.choices} if s.choices else {}
        if s.metavar:
            kwargs["metavar"] = s.metavar
        parser.add_argument(s.flag, type=float if s.scale != 1 else s.type, default=default, help=s.help, **kwargs)


def from_flags(args):
    """The settings server.py's parsed flags give (bytes and pixels from MB and megapixels)."""
    config = {}
    for s in SETTINGS:
        if s.flag is not None:
            value = getattr(args, _dest(s))
            config[s.name] = int(value * s.scale) if s.scale != 1 else value
    return config


def settings_from_env(environ=None):
    """The GARBAGE_<NAME> variables that are set, as settings (Setting.parse). Flask's
    Config.from_prefixed_env reads os.environ, each value kept as the string it is (its JSON parsing
    would turn a folder named 2024 into a number); `environ`, a mapping, is read instead when given."""
    if environ is None:
        raw = Config(os.curdir)
        try:
            raw.from_prefixed_env(ENV_PREFIX, loads=str)
        except TypeError:  # GARBAGE_X and GARBAGE_X__Y both set: Flask nests the second into the first's string
            environ = os.environ
    if environ is not None:
        raw = {key.removeprefix(f"{ENV_PREFIX}_"): value for key, value in environ.items()
               if key.startswith(f"{ENV_PREFIX}_")}
    return {s.name: s.parse(raw[s.name]) for s in SETTINGS if s.name in raw}
