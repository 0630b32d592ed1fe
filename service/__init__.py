"""msunas service package."""
