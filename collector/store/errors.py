"""Write errors classified by what retrying would achieve (telegraf learned this the hard way)."""

from __future__ import annotations


class WriteError(Exception):
    """A failed write. `retryable` batches are spooled and replayed; the rest are dropped and logged."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


# 1.x answers 500 for these, yet retrying can never succeed.
_PERMANENT_5XX = ("max series per database exceeded", "points beyond retention policy", "field type conflict")


def classify_status(status: int, body: str) -> WriteError:
    """Map an HTTP answer to a `WriteError`: 429/5xx retry, other 4xx are bad data.

    401/403/404 say the server is not ready for us (credentials, missing database), not that
    the points are bad: they are kept (spooled) so fixing the deployment loses nothing.
    """
    text = body.strip()[:500]
    if status == 429 or status >= 500:
        retryable = not any(marker in text for marker in _PERMANENT_5XX)
    else:
        retryable = status in (401, 403, 404, 408)
    return WriteError(f"HTTP {status}: {text}", status=status, retryable=retryable)


class SpoolFullError(Exception):
    """InfluxDB is unreachable and the on-disk spool reached its cap: the run cannot complete safely."""
