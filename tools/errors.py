"""The project's errors: one base that says how each is shown, and the one way the entry scripts show it.

Every error meant for the user (bad flags, data, model files, uploads) is a GarbageError: its
message says what to fix; `exit_code` is what a command-line script returns for it (printed as
`error: <message>` by `guarded`), `http_status` what the JSON API answers with it (tools/serving/api.py).
Classes that code catches as OSError or ValueError keep those bases as well.
"""

import functools
import sys


class GarbageError(Exception):
    """An error whose message is for the user; `exit_code` for the scripts, `http_status` for the API."""

    exit_code = 2
    http_status = 400

    def __init__(self, message="", *, exit_code=None, http_status=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        if http_status is not None:
            self.http_status = http_status


class UsageError(GarbageError):
    """Bad input from the user (a flag, a data folder, a missing package): exit code 2."""


def report(error):
    """Print `error: <message>` on stderr; the exit code of `error` (a GarbageError)."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    return error.exit_code


def guarded(main):
    """An entry script's main(args): a GarbageError it raises is printed by `report` (no traceback) and
    main returns its exit code."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except GarbageError as e:
            return report(e)

    return run
