"""The web app manifest that makes the page installable: served with its MIME type, linked from
both pages, with the fields an install needs, icons that resolve to what they claim, addresses
that follow the instance's prefix, and kept for offline use with the page's shell."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image

from demo_server.manifest import MIMETYPE

REQUIRED = ("name", "short_name", "start_url", "display", "icons", "theme_color")


def manifest_of(client, prefix: str = "") -> dict:
    response = client.get("/manifest.webmanifest", base_url="http://localhost" + prefix)
    assert response.status_code == 200
    assert response.mimetype == MIMETYPE
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    return json.loads(response.get_data(as_text=True))


def test_the_manifest_has_what_an_install_needs(client):
    manifest = manifest_of(client)
    assert all(manifest.get(field) for field in REQUIRED), manifest
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == manifest["scope"] == "/"
    assert len(manifest["short_name"]) <= 12
    for field in ("theme_color", "background_color"):
        assert re.fullmatch(r"#[0-9a-f]{6}", manifest[field]), manifest[field]
    purposes = {icon["purpose"] for icon in manifest["icons"]}
    assert purposes == {"any", "maskable"}
    png_sizes = {icon["sizes"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= png_sizes


def test_every_icon_resolves_to_what_it_claims(client):
    for icon in manifest_of(client)["icons"]:
        response = client.get(icon["src"])
        assert response.status_code == 200, icon
        assert response.mimetype == icon["type"], icon
        if icon["type"] == "image/png":
            image = Image.open(io.BytesIO(response.data))
            assert "{}x{}".format(*image.size) == icon["sizes"], icon
            if icon["purpose"] == "maskable":  # fills its square: no transparent corner
                assert image.convert("RGBA").getpixel((0, 0))[3] == 255, icon
        else:
            assert icon["sizes"] == "any" and b"<svg" in response.data, icon


@pytest.mark.parametrize("path", ["/", "/model"])
def test_both_pages_link_the_manifest(client, path):
    page = client.get(path).get_data(as_text=True)
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert (
        '<meta name="theme-color" content="{}">'.format(manifest_of(client)["theme_color"]) in page
    )


def test_addresses_follow_the_instances_prefix(client):
    manifest = manifest_of(client, "/skin")
    assert manifest["start_url"] == manifest["scope"] == manifest["id"] == "/skin/"
    assert all(icon["src"].startswith("/skin/static/") for icon in manifest["icons"])


def test_the_manifest_and_icons_are_kept_for_offline_use(
    demo_model_path, demo_samples_dir, tmp_path
):
    """The page's shell (what it and the service worker cache) lists them when on-device mode
    is available."""
    from test_ondevice_routes import app_for, fake_web

    client = app_for(demo_model_path, demo_samples_dir, fake_web(tmp_path / "web")).test_client()
    page = client.get("/").get_data(as_text=True)
    config = json.loads(re.search(r'id="ondevice-config">(.*?)</script>', page).group(1))
    assert "/manifest.webmanifest" in config["shell"]
    assert {icon["src"] for icon in manifest_of(client)["icons"]} <= set(config["shell"])
