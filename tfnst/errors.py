"""The one exception type for problems the user can fix (bad input, bad options)."""


class TfnstError(ValueError):
    """A user-facing error: the message is one line and says what to change.

    The CLI prints it as ``tfnst: error: <message>`` and exits with status 2;
    anything else escaping is a bug in tfnst.
    """
