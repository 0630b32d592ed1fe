"""``python -m service.cli`` (how ``msunas serve`` starts its local workers)."""

from service.cli import main

main()
