"""``faceplate review``: the local review web app of a shot (viewer, compare, tracks and QC marks).

``serve(ReviewConfig(shot=...))`` runs it; ``create_app`` builds the ASGI app alone (tests, embedding).
"""

from faceplate.app.config import ReviewConfig
from faceplate.app.server import ReviewServer, create_app, serve

__all__ = ["ReviewConfig", "ReviewServer", "create_app", "serve"]
