"""The one exception type that the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix. The message names the problem and the fix, in one line."""
