"""The tagging service (``nertool serve``): an ASGI app over the Tagger's one inference path,
with dynamic batching. ``create_app(ServeConfig(model=...))`` is the app (for uvicorn, or for
Ray Serve: see README)."""
from nertool.serving.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
