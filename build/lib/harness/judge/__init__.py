"""Turns a cell's raw files into a row: collect (Locust records → statistics), resources (CPU,
memory), validity (can the row be trusted) and bottleneck (what limited it)."""
