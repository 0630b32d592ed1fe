"""The service: the REST API (``create_app``), the database layer, the workers and the ``msunas`` CLI.

Layout: ``app.py`` builds the FastAPI app; ``deps.py`` its dependencies; ``problems.py`` the RFC 9457 problem
types and the one exception-to-problem mapping; ``routes/`` one router per resource; ``schemas.py`` request and
response models; ``repository.py`` every database read and write; ``worker.py`` the workers; ``settings.py`` the
settings; ``cli/`` the command line (one module per command group).
"""

__all__ = ["app", "cli", "repository", "settings", "worker"]
