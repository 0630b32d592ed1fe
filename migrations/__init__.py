"""msunas migrations package."""
