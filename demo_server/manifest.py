"""The web app manifest: what a phone needs to install the page as an app (its name, icons,
start address, standalone display and colours). The icons are static files; the service
worker and the page keep them, with the manifest, for offline use (pages.ondevice_config)."""

from __future__ import annotations

from flask import Blueprint, Response, json, url_for

bp = Blueprint("manifest", __name__)
MIMETYPE = "application/manifest+json"
NAME = "Skin spot check"
SHORT_NAME = "Spot check"  # under a home-screen icon (12 characters at most show whole)
THEME_COLOR = "#0b6e99"  # app.css --accent
BACKGROUND_COLOR = "#f6f8f9"  # app.css --bg
# (static file, sizes, type, purpose): the SVGs for any size, PNGs where a platform needs them
# (install prompts want a 192 and a 512 px PNG); the maskable ones fill their square and keep
# the mark inside the central 80% circle that every mask shape leaves visible.
ICONS = (
    ("favicon.svg", "any", "image/svg+xml", "any"),
    ("icon-192.png", "192x192", "image/png", "any"),
    ("icon-512.png", "512x512", "image/png", "any"),
    ("icon-maskable.svg", "any", "image/svg+xml", "maskable"),
    ("icon-maskable-512.png", "512x512", "image/png", "maskable"),
)
ICON_FILES = tuple(icon[0] for icon in ICONS)


def web_app_manifest() -> dict:
    """The manifest's fields, with the addresses of this instance (it may live under a prefix)."""
    home = url_for("pages.index")
    return {
        "id": home,
        "name": NAME,
        "short_name": SHORT_NAME,
        "description": "A screening aid for a photo of one skin spot, checked on this phone. "
        "Not a diagnosis.",
        "lang": "en",
        "start_url": home,
        "scope": home,
        "display": "standalone",
        "orientation": "portrait",
        "background_color": BACKGROUND_COLOR,
        "theme_color": THEME_COLOR,
        "icons": [
            {
                "src": url_for("static", filename=name),
                "sizes": sizes,
                "type": kind,
                "purpose": purpose,
            }
            for name, sizes, kind, purpose in ICONS
        ],
    }


@bp.app_context_processor
def _theme_color() -> dict[str, str]:
    return {"theme_color": THEME_COLOR}


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    """Served from the root, beside the page it installs; revalidated on each use."""
    response = Response(json.dumps(web_app_manifest()), mimetype=MIMETYPE)
    response.headers["Cache-Control"] = "no-cache"
    return response
