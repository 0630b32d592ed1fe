"""One ``APIRouter`` per resource; ``service.app.create_app`` includes them all."""

from service.routes import archive, export, iterations, jobs, pages, select, tokens, trainings

ROUTERS = (pages.router, jobs.router, iterations.router, archive.router, select.router, export.router,
           trainings.router, tokens.router)

__all__ = ["ROUTERS"]
