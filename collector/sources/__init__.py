"""Where fills come from: files (JSONL / CSV), later HTTP intake and the simulator."""
