"""Vendor the browser assets GX Data Docs load from CDNs, so the pages render offline.

Great Expectations 1.24 writes Data Docs pages that load jQuery, Bootstrap, bootstrap-table,
Font Awesome and Vega from public CDNs. Behind a firewall (or on a machine without internet)
the pages then show unstyled, with no tables' filters and no charts. The report viewer of
``plugins/ct_loop_plugin.py`` serves these pages with each CDN address replaced by a local copy.

This script makes those copies: it takes each asset from the npm package at the version the CDN
address names (``npm pack``; GX's own logo from the installed great_expectations package), writes it under ``plugins/ct_loop_static/`` and records, per CDN
address, the local file, the package, its licence and the file's sha256 in ``manifest.json``.
The result is committed, so neither users nor CI need npm; run it again (``python
scripts/vendor_data_docs_assets.py``) after upgrading great-expectations, and
``tests/unit/plugins/test_data_docs_assets.py`` fails while any CDN address in GX's templates has no
local copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import metadata
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "plugins" / "ct_loop_static"

# CDN address in GX's templates -> (npm package@version, file in the package, local path).
# Versions "@5"/"@6" on jsDelivr resolve to the newest release of that major at request time;
# the copy pins the one that was newest when this script ran (recorded in the manifest).
ASSETS: dict[str, tuple[str, str, str]] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js", "jquery-3.7.1/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js@1.12.9", "dist/umd/popper.min.js", "popper.js-1.12.9/popper.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1", "dist/css/bootstrap.min.css", "bootstrap-4.3.1/bootstrap.min.css"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1", "dist/js/bootstrap.min.js", "bootstrap-4.3.1/bootstrap.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1", "dist/bootstrap-table.min.css", "bootstrap-table-1.19.1/bootstrap-table.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1", "dist/bootstrap-table.min.js", "bootstrap-table-1.19.1/bootstrap-table.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table@1.19.1", "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table@1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.css",
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.css"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table@1.19.0", "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker@1.9.0", "dist/css/bootstrap-datepicker.min.css",
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker@1.9.0", "dist/js/bootstrap-datepicker.min.js",
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark@1.1.0", "dist/css/bootstrap-prefers-dark.min.css",  # same rules, 1/6 the size
        "bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css"),
    # all.min.css loads ../webfonts/*.woff2 relative to itself: the folder layout is kept
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.6.0", "css/all.min.css", "fontawesome-free-6.6.0/css/all.min.css"),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega@5", "build/vega.min.js", "vega-5/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite@5", "build/vega-lite.min.js", "vega-lite-5/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed@6", "build/vega-embed.min.js", "vega-embed-6/vega-embed.min.js"),
}  # fmt: skip
# addresses GX fills in itself: its logo, fetched with a tracking query (data context id, time)
# from its web-assets bucket; the same image ships in the great_expectations package
PACKAGE_ASSETS: dict[str, tuple[str, str, str]] = {
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png": (
        "great_expectations", "render/view/static/images/logo-long.png", "great_expectations/logo-long.png"),
}  # fmt: skip
# files a vendored file loads itself (same package, same relative layout)
EXTRA_FILES: dict[str, list[tuple[str, str]]] = {
    "@fortawesome/fontawesome-free@6.6.0": [
        (f"webfonts/fa-{face}.woff2", f"fontawesome-free-6.6.0/webfonts/fa-{face}.woff2")
        for face in ("brands-400", "regular-400", "solid-900", "v4compatibility")
    ],
}

log = logging.getLogger("vendor_data_docs_assets")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_licence(package: Path, meta: dict, target: Path) -> None:
    """The package's licence file, or where it ships none, its package.json licence field."""
    licence = next((p for p in package.iterdir() if p.name.upper().startswith("LICENSE")), None)
    if licence is not None:
        shutil.copyfile(licence, target)
    else:
        target.write_text(
            f"{meta['name']}@{meta['version']} is licensed {meta.get('license', 'as its authors state')} "
            f"(its npm package ships no licence file; see {meta.get('homepage', 'its repository')}).\n"
        )


def unpack(spec: str, work: Path) -> tuple[Path, dict]:
    """``npm pack`` one package into ``work``; returns (package folder, its package.json)."""
    out = subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(work), spec],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    folder = work / out.removesuffix(".tgz")
    with tarfile.open(work / out) as tar:
        tar.extractall(folder, filter="data")
    package = folder / "package"
    return package, json.loads((package / "package.json").read_text())


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if shutil.which("npm") is None:
        log.error("npm is needed to vendor the assets (Debian: apt-get install npm)")
        return 1
    packages: dict[str, tuple[Path, dict]] = {}
    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in sorted({spec for spec, _, _ in ASSETS.values()}):
            packages[spec] = unpack(spec, Path(tmp))
            log.info("%s -> %s", spec, packages[spec][1]["version"])
        if STATIC.exists():
            shutil.rmtree(STATIC)
        copies = [(spec, src, dst, url) for url, (spec, src, dst) in ASSETS.items()]
        copies += [(spec, src, dst, None) for spec, files in EXTRA_FILES.items() for src, dst in files]
        for spec, src, dst, url in copies:
            package, meta = packages[spec]
            target = STATIC / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(package / src, target)
            write_licence(package, meta, STATIC / dst.split("/")[0] / "LICENSE")
            if url is not None:
                manifest[url] = {
                    "file": dst,
                    "package": f"{meta['name']}@{meta['version']}",
                    "license": meta.get("license", "see LICENSE"),
                    "sha256": sha256(target),
                }
    for url, (package, src, dst) in PACKAGE_ASSETS.items():
        target = STATIC / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(str(files(package))) / src, target)
        meta = metadata(package)
        (target.parent / "LICENSE").write_text(
            f"{package} {meta['Version']} is licensed {meta['License'] or meta['License-Expression']} "
            f"(copied from the installed Python package).\n"
        )
        manifest[url] = {"file": dst, "package": f"{package}=={meta['Version']}",
                         "license": meta["License"] or meta["License-Expression"], "sha256": sha256(target)}  # fmt: skip
    (STATIC / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    size = sum(p.stat().st_size for p in STATIC.rglob("*") if p.is_file())
    log.info("%d CDN addresses -> %s (%.1f MB)", len(manifest), STATIC, size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
