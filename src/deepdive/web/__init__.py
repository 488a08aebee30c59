"""The web app and REST API: `deepdive serve`, or `create_app()` for any ASGI server."""

from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
