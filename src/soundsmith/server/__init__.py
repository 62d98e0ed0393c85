"""``soundsmith serve``: an HTTP API and a page for generating, listening and comparing (FastAPI + uvicorn).

Thin: a request is checked, queued, and answered by the model family's pipeline; the server never knows which
family it serves. ``create_app(ServerSettings(models={"name": model_dir}, out_dir=...))`` builds the app.
"""

from soundsmith.server.app import create_app
from soundsmith.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
