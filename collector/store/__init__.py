"""InfluxDB I/O: line protocol out (writer, spool), InfluxQL in (reader), a private influxd."""
