"""Built-in evaluators; importing this package registers them (``oracle``, ``supernet``)."""

from search.evaluators import supernet  # noqa: E402,F401  (registers "supernet")
