"""The one exception type the CLI and the demo turn into a one-line message."""


class ZooError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name."""
