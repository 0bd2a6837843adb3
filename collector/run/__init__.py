"""`stratmon run`: the long-running collector (sources → engine → InfluxDB, jobs, checkpoints)."""
