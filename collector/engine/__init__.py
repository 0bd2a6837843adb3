"""Pure analytics: FIFO positions and round trips, incremental metrics at four levels. No I/O."""
