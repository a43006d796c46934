"""Errors the ``relight`` command turns into a one-line message (no traceback; see assets_manifest.cli_errors)."""

from assets_manifest.cli_errors import RUNTIME


class TrainError(RuntimeError):
    """A training run that cannot start or continue; the message says what to do.

    ``exit_code`` 1 (runtime: no data, a loss that turned NaN) unless raised as ``usage(TrainError(...))``
    (exit 2: flags that do not fit the output folder, such as a missing --resume)."""

    exit_code = RUNTIME
