"""Local "remote API" simulator used as the slow upstream the benchmark targets call."""
