"""Errors that are the user's to fix: the CLI prints them as one line and exits 2, no traceback."""


class UserError(Exception):
    """A mistake in input, configuration or invocation; the message says what was expected."""

    exit_code = 2


class RunFailed(Exception):
    """The run could not complete (e.g. InfluxDB down with the spool disabled or full); exit 1."""

    exit_code = 1


class QueryError(Exception):
    """The server refused or failed a query; the message is the server's own explanation."""
