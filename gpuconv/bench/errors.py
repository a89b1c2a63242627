"""The one exception type of the command line."""


class BenchError(Exception):
    """A problem the user can act on (an unavailable backend or feature, a model that does not fit its
    input): printed as one line, exit status 1."""
