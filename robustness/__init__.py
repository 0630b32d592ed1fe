"""msunas robustness package."""
