"""msunas search package."""
