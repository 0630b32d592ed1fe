"""msunas early_exit package."""
