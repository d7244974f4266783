"""Refresh the browser UIs' vendored assets (GraphiQL, Swagger UI, ReDoc) from the npm registry.

    python scripts/refresh_ui_assets.py            # the pinned versions below
    python scripts/refresh_ui_assets.py --check    # verify the committed files against MANIFEST.json

Each package is fetched with ``npm pack`` (the registry's tarball, nothing executed), and only the files the
pages load are kept, beside the package's licence, under ``oro_graph/web/static/vendor/<name>/``.
``MANIFEST.json`` records every package's version and licence, each file's sha384 (the tests compare them
with the files) and the few strings patched so that nothing is fetched from elsewhere (PATCHES, with
reasons). To move to a new version, change PACKAGES, run this, then run ``tests/web`` (the browser
test loads every page with the network blocked).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "oro_graph" / "web" / "static" / "vendor"

# name under vendor/ -> (npm package, version, files kept: path in the tarball -> path under vendor/<name>/)
PACKAGES: dict[str, tuple[str, str, dict[str, str]]] = {
    "react": ("react", "18.2.0", {"umd/react.production.min.js": "react.production.min.js"}),
    "react-dom": ("react-dom", "18.2.0", {"umd/react-dom.production.min.js": "react-dom.production.min.js"}),
    "js-cookie": ("js-cookie", "3.0.5", {"dist/js.cookie.min.js": "js.cookie.min.js"}),
    "graphiql": (
        "graphiql",
        "3.8.3",
        {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"},
    ),
    "graphiql-plugin-explorer": (
        "@graphiql/plugin-explorer",
        "1.0.2",
        {"dist/index.umd.js": "index.umd.js", "dist/style.css": "style.css"},
    ),
    "swagger-ui": (
        "swagger-ui-dist",
        "5.32.0",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui.css": "swagger-ui.css",
            "favicon-32x32.png": "favicon-32x32.png",
        },
    ),
    "redoc": ("redoc", "2.5.4", {"bundles/redoc.standalone.js": "redoc.standalone.js"}),
}
# Strings replaced in a vendored file, each with why; the refresh fails if one is no longer there.
PATCHES: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "redoc": {
        "redoc.standalone.js": [
            (
                '"https://cdn.redoc.ly/redoc/logo-mini.svg"',
                '"data:,"',
                "the sidebar's Redocly logo came from their CDN; an empty image hides it (Redoc's fallback)",
            )
        ]
    }
}
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENCE")


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def fetch(name: str, package: str, version: str, files: dict[str, str], work: Path) -> dict[str, object]:
    out = subprocess.run(
        ["npm", "pack", "--silent", f"{package}@{version}"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = work / out.stdout.strip().splitlines()[-1]
    target = VENDOR / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    hashes: dict[str, str] = {}
    patched: list[str] = []
    with tarfile.open(tarball) as tar:
        meta = json.load(tar.extractfile("package/package.json"))  # type: ignore[arg-type]
        members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
        for source, dest in files.items():
            data = tar.extractfile(members[source]).read()  # type: ignore[union-attr]
            for old, new, why in PATCHES.get(name, {}).get(dest, []):
                if data.count(old.encode()) != 1:
                    raise SystemExit(
                        f"{package}@{version} {source}: expected {old} once ({why}); update PATCHES"
                    )
                data = data.replace(old.encode(), new.encode())
                patched.append(f"{dest}: {why}")
            (target / dest).write_bytes(data)
            hashes[dest] = sri(data)
        licence = next((members[n] for n in LICENCE_NAMES if n in members), None)
        if licence is not None:
            (target / "LICENSE").write_bytes(tar.extractfile(licence).read())  # type: ignore[union-attr]
        else:  # some packages ship no licence file; record what package.json declares
            (target / "LICENSE").write_text(
                f"{package} {version} ships no licence file; package.json declares: {meta.get('license')}\n"
                f"See {meta.get('homepage') or _url(meta.get('repository'))}\n"
            )
    entry = {"package": package, "version": meta["version"], "license": meta.get("license"), "files": hashes}
    return entry | ({"patched": patched} if patched else {})


def _url(repository: object) -> object:
    return repository.get("url") if isinstance(repository, dict) else repository


def check() -> int:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    bad = [
        f"{name}/{path}"
        for name, entry in manifest.items()
        for path, digest in entry["files"].items()
        if not (VENDOR / name / path).is_file() or sri((VENDOR / name / path).read_bytes()) != digest
    ]
    for item in bad:
        print(f"differs from MANIFEST.json: {item}", file=sys.stderr)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="verify the committed files, fetch nothing")
    if parser.parse_args().check:
        return check()
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (package, version, files) in PACKAGES.items():
            manifest[name] = fetch(name, package, version, files, Path(tmp))
            print(f"{name}: {package}@{version}")
    (VENDOR / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
