"""Draws and writes from a run folder: the charts, the self-contained HTML report and flame graphs."""
