"""Build the store objects from settings: where InfluxDB is, a writer with its spool, a reader."""

from __future__ import annotations

from collector.config import Settings
from collector.errors import UserError
from collector.store.influxd import LocalInfluxd
from collector.store.reader import Reader
from collector.store.spool import Spool
from collector.store.transport import AutoTransport, Endpoint
from collector.store.writer import Writer


def influx_url(settings: Settings) -> str:
    """The configured URL, else the private influxd of `stratmon influx start` in this state dir."""
    if settings.influx.url:
        return settings.influx.url
    running = LocalInfluxd(settings.state_dir / "influxdb").status()
    if running is None:
        raise UserError(
            "no InfluxDB configured: set influx.url (or STRATMON_INFLUX_URL), or run `stratmon influx start`"
        )
    return running.url


def open_writer(settings: Settings, block_when_full: bool = False, max_pending: int = 4) -> Writer:
    """`block_when_full`: wait (backpressure) instead of failing when the spool cannot take more;
    `max_pending`: batches that may wait for the sender before producers block."""
    url = influx_url(settings)
    spool = Spool(settings.spool.dir, settings.spool.max_bytes) if settings.spool.enabled else None
    cfg = settings.influx
    return Writer(
        AutoTransport(cfg, url),
        batch_size=cfg.batch_size,
        flush_interval=cfg.flush_interval,
        spool=spool,
        drain_timeout=cfg.drain_timeout,
        block_when_full=block_when_full,
        max_pending=max_pending,
    )


def open_reader(settings: Settings) -> Reader:
    return Reader(Endpoint.from_config(settings.influx, influx_url(settings)))
