"""The report viewer serves GX Data Docs with local copies of the assets GX loads from CDNs."""

from __future__ import annotations

import hashlib
import json
import re
from importlib.resources import files

from tests.airflow_helpers import plugin

CDN_ADDRESS = re.compile(r'(?:src|href)="(https://[^"]+)"')


def gx_template_cdn_addresses() -> set[str]:
    """Every script or style sheet address in the installed GX's Data Docs templates."""
    templates = files("great_expectations") / "render" / "view" / "templates"
    found = set()
    for t in templates.iterdir():
        text = t.read_text(encoding="utf-8")
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", text):
            found.update(CDN_ADDRESS.findall(tag))
    return found


def test_every_cdn_asset_of_the_installed_gx_has_a_local_copy():
    addresses = gx_template_cdn_addresses()
    assert len(addresses) >= 10  # the parser finds GX's imports at all
    missing = addresses - set(plugin().cdn_copies())
    assert not missing, f"run scripts/vendor_data_docs_assets.py: no local copy of {sorted(missing)}"


def test_the_copies_are_the_files_the_manifest_recorded():
    static = plugin().STATIC_DIR
    manifest = json.loads((static / "manifest.json").read_text())
    for url, entry in manifest.items():
        data = (static / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], url
        assert (static / entry["file"].split("/")[0] / "LICENSE").is_file(), entry["package"]
    # Font Awesome's style sheet loads its fonts relative to itself
    css = (static / "fontawesome-free-6.6.0" / "css" / "all.min.css").read_text()
    for font in set(re.findall(r"url\(\.\./webfonts/([^)]+\.woff2)\)", css)):
        assert (static / "fontawesome-free-6.6.0" / "webfonts" / font).is_file(), font


def test_offline_html_points_every_cdn_address_at_the_viewer():
    page = "\n".join(
        f'<script src="{u}"></script>' if u.endswith((".js", "@5", "@6")) else f'<link href="{u}"/>'
        for u in gx_template_cdn_addresses()
    )
    page += '\n<a href="https://docs.greatexpectations.io/">docs</a>'  # a plain link stays a link
    page += '\n<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=x"/>'
    out = plugin().offline_html(page, "/base/ct-loop/static")
    assert not re.search(r'<(script|link|img)[^>]*"https?://', out), out
    local = re.findall(r'"/base/ct-loop/static/([^"]+)"', out)
    assert len(local) == len(gx_template_cdn_addresses()) + 1
    assert local[-1] == "great_expectations/logo-long.png"  # the tracking query is gone too
    assert all((plugin().STATIC_DIR / f).is_file() for f in local)
    assert 'href="https://docs.greatexpectations.io/"' in out
