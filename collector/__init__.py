"""stratmon collector: fills in, live trading metrics out to InfluxDB."""

__version__ = "0.1.0"
