"""The exceptions that the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix. The message names the problem and the fix, in one line."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the message names the epoch, the step and the likely cause."""


class Interrupted(Exception):
    """Training was stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP after saving a checkpoint it can resume from.

    signum: the signal that stopped it (the CLI exits with 128 + signum, as a shell reports a signal).
    """

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.signum = signum
