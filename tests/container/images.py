"""Images for the container test where no registry is reachable, built from Debian and PyPI only.

* ``ct-test/python-base:3.11-bookworm``: a ``debootstrap --variant=minbase bookworm`` root file
  system with Python 3.11 (venv, pip), imported as an image: what the project's Dockerfile starts
  from instead of ``python:3.11-slim-bookworm``.
* ``ct-test/postgres-standin`` and ``ct-test/redis-standin``: Debian's PostgreSQL 15 and Redis 7.0
  on that base (``docker/standins/``), with the official images' contract the compose file uses.

An image that already exists is reused; the official images are used when they are present.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
BASE = "ct-test/python-base:3.11-bookworm"
OFFICIAL = {"python": "python:3.11-slim-bookworm", "postgres": "postgres:16", "redis": "redis:7.2-bookworm"}
STANDIN = {"python": BASE, "postgres": "ct-test/postgres-standin", "redis": "ct-test/redis-standin"}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if out.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:4])} ... failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


def exists(image: str) -> bool:
    return subprocess.run([DOCKER, "image", "inspect", image], capture_output=True).returncode == 0


def apt_mirror() -> str:
    """The Debian mirror the host's apt already uses (nothing named in the repository)."""
    for f in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            parts = line.split()
            if line.startswith("URIs:") and parts[1].rstrip("/").endswith("/debian"):
                return parts[1]
            if line.startswith("deb ") and parts[1].rstrip("/").endswith("/debian"):
                return parts[1]
    raise RuntimeError("no Debian mirror found in /etc/apt: cannot debootstrap a base image")


def ensure_base() -> str:
    """The Dockerfile's base: the official python image if present, else a debootstrapped one."""
    if exists(OFFICIAL["python"]):
        return OFFICIAL["python"]
    if exists(BASE):
        return BASE
    rootfs = Path(tempfile.mkdtemp(prefix="ct-rootfs-"))
    try:
        run("debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
            "bookworm", str(rootfs), apt_mirror(), timeout=900)  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
            (rootfs / junk).mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [DOCKER, "import", "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "-c", "ENV LANG=C.UTF-8", "-c", 'CMD ["/bin/bash"]', "-", BASE],
            stdin=tar.stdout, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        tar.wait(60)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE


def build(tag: str, context: Path, base: str, *extra: str) -> None:
    """``docker build`` with BuildKit; the host's CA bundle goes in as a build secret only."""
    args = [DOCKER, "build", "--quiet", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, *extra]
    if CA_BUNDLE.exists():
        args += ["--secret", f"id=cabundle,src={CA_BUNDLE}"]
    run(
        *args,
        str(context),
        env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        timeout=1500,
    )


def ensure_service_images(base: str) -> dict[str, str]:
    """Images for the compose file's postgres and redis services."""
    images = {}
    for name in ("postgres", "redis"):
        if exists(OFFICIAL[name]):
            images[name] = OFFICIAL[name]
            continue
        if not exists(STANDIN[name]):
            build(STANDIN[name], ROOT / "docker" / "standins" / name, base)
        images[name] = STANDIN[name]
    return images
