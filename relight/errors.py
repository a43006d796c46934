"""Errors the ``relight`` command turns into a one-line message and exit status 2 (no traceback)."""


class TrainError(RuntimeError):
    """A training run that cannot start or continue; the message says what to do."""
