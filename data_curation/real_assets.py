"""Real third-party animated glTF assets, fetched at run time (never checked in).

The list lives in ``data_curation/real_assets.json`` (name, animation kind, path inside the
package, upstream origin, licence). The files come from Debian's ``assimp-testmodels`` package
(assimp's test models, which include Khronos glTF sample models):

1. if the package is installed (``/usr/share/assimp/models``), its files are used in place;
2. else ``apt-get download assimp-testmodels`` fetches the .deb into the cache folder (no root
   and no install needed) and it is unpacked there (``dpkg-deb -x``, or a pure-Python ar/tar
   reader where dpkg-deb is missing);
3. glTF 1.0 assets (the node-animated CesiumMilkTruck) are converted to glTF 2.0 .glb with
   the npm package ``gltf-pipeline`` installed into the cache folder (needs node/npm); without
   them such an asset is reported unavailable and the others still come.

The cache is ``$D4D_REAL_ASSETS_CACHE`` or ``~/.cache/diffusion4d/real_assets``.

    python -m diffusion4d.data_curation.real_assets --output DIR [--kinds node,skin,morph] [--names A,B] [--list]

then ``diffusion4d curate --input DIR ...`` curates them like any local asset.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

LIST_PATH = Path(__file__).with_name("real_assets.json")
INSTALLED_ROOT = Path("/usr/share/assimp/models")
KINDS = ("node", "skin", "morph")


class RealAssetsUnavailable(RuntimeError):
    """The package (or a converter) cannot be obtained here; the message says why."""


@dataclass
class RealAsset:
    name: str
    kind: str  # node | skin | morph
    path: str  # inside the package's model root
    files: List[str]
    format: str
    upstream: str
    licence: str
    convert: Optional[Dict[str, str]] = None


def asset_list() -> List[RealAsset]:
    doc = json.loads(LIST_PATH.read_text())
    return [RealAsset(**a) for a in doc["assets"]]


def package_info() -> Dict[str, str]:
    return json.loads(LIST_PATH.read_text())["package"]


def cache_dir() -> Path:
    return Path(os.environ.get("D4D_REAL_ASSETS_CACHE") or Path.home() / ".cache" / "diffusion4d" / "real_assets")


def _run(cmd: Sequence[str], cwd: Optional[Path] = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _extract_deb(deb: Path, dest: Path) -> None:
    """Unpack a .deb's data archive into ``dest`` (dpkg-deb when present, else ar + tar here)."""
    if shutil.which("dpkg-deb"):
        r = _run(["dpkg-deb", "-x", str(deb), str(dest)])
        if r.returncode == 0:
            return
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise RealAssetsUnavailable(f"{deb}: not a Debian package (ar archive)")
    pos = 8
    while pos + 60 <= len(data):
        name = data[pos : pos + 16].decode().strip().rstrip("/")
        size = int(data[pos + 48 : pos + 58].decode().strip())
        body = data[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".xz"):
                body = lzma.decompress(body)
            elif name.endswith(".zst"):
                raise RealAssetsUnavailable(f"{deb}: zstd data archive needs dpkg-deb")
            mode = "r:gz" if name.endswith(".gz") else "r:"
            with tarfile.open(fileobj=io.BytesIO(body), mode=mode) as tar:
                tar.extractall(dest, filter="data")
            return
        pos += 60 + size + (size & 1)
    raise RealAssetsUnavailable(f"{deb}: no data archive inside")


def package_root(cache: Optional[Path] = None, allow_download: bool = True) -> Path:
    """The folder holding the package's models (``.../usr/share/assimp/models``)."""
    info = package_info()
    if INSTALLED_ROOT.is_dir() and any(INSTALLED_ROOT.iterdir()):
        return INSTALLED_ROOT
    cache = Path(cache or cache_dir())
    unpacked = cache / info["name"]
    root = unpacked / info["root"]
    if (unpacked / ".complete").is_file():
        return root
    if not allow_download:
        raise RealAssetsUnavailable(f"{info['name']} is neither installed nor cached in {cache}")
    if shutil.which("apt-get") is None:
        raise RealAssetsUnavailable(f"apt-get not found: cannot fetch the Debian package {info['name']}")
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{info['name']}_*.deb"):
        old.unlink()
    r = _run(["apt-get", "download", info["name"]], cwd=cache)
    debs = sorted(cache.glob(f"{info['name']}_*.deb"))
    if r.returncode != 0 or not debs:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise RealAssetsUnavailable(f"apt-get download {info['name']} failed: {msg[-1] if msg else r.returncode}"
                                    " (run 'apt-get update' first?)")  # fmt: skip
    tmp = cache / f".{info['name']}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    _extract_deb(debs[-1], tmp)
    keep = {Path(a.path).parent for a in asset_list()}  # the listed assets' folders only (~1 MB of ~75)
    tmp_root = tmp / info["root"]
    shutil.rmtree(unpacked, ignore_errors=True)
    for folder in keep:
        if (tmp_root / folder).is_dir():
            (root / folder).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp_root / folder), str(root / folder))
    shutil.rmtree(tmp, ignore_errors=True)
    (unpacked / ".complete").write_text(debs[-1].name + "\n")
    debs[-1].unlink()  # the unpacked models are what is kept
    return root


def _gltf_pipeline(cache: Path, spec: str) -> List[str]:
    """Command prefix running the npm package ``spec`` (installed into the cache on first use)."""
    name = spec.rsplit("@", 1)[0]
    tools = cache / "npm"
    script = tools / "node_modules" / name / "bin" / f"{name}.js"
    if not script.is_file():
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise RealAssetsUnavailable(f"node/npm not found: cannot install {spec} to convert glTF 1.0")
        tools.mkdir(parents=True, exist_ok=True)
        r = _run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(tools), spec], timeout=900)
        if r.returncode != 0 or not script.is_file():
            raise RealAssetsUnavailable(f"npm install {spec} failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return ["node", str(script)]


def fetch(output: Path, names: Optional[Sequence[str]] = None, kinds: Optional[Sequence[str]] = None,
          cache: Optional[Path] = None, strict: bool = False) -> Dict[str, object]:  # fmt: skip
    """Put the selected assets in ``output`` (one ``<name>.gltf``/``.glb`` each, with its side
    files) ready for ``diffusion4d curate --input output``.

    Returns ``{"assets": {name: path}, "unavailable": {name: reason}}``. Raises
    :class:`RealAssetsUnavailable` when the package itself cannot be had, or when ``strict``
    and any selected asset is unavailable.
    """
    cache = Path(cache or cache_dir())
    output = Path(output)
    chosen = [a for a in asset_list() if (not names or a.name in names) and (not kinds or a.kind in kinds)]
    if names:
        unknown = set(names) - {a.name for a in asset_list()}
        if unknown:
            raise ValueError(f"unknown real asset(s) {sorted(unknown)}; known: {[a.name for a in asset_list()]}")
    root = package_root(cache)
    output.mkdir(parents=True, exist_ok=True)
    got: Dict[str, Path] = {}
    missing: Dict[str, str] = {}
    for a in chosen:
        src = root / a.path
        try:
            if not src.is_file():
                raise RealAssetsUnavailable(f"{a.path} not in the package")
            if a.convert:
                converted = cache / "converted" / f"{a.name}.glb"
                if not converted.is_file():
                    converted.parent.mkdir(parents=True, exist_ok=True)
                    cmd = _gltf_pipeline(cache, a.convert["npm"])
                    part = converted.with_suffix(".part.glb")
                    r = _run(cmd + ["-i", str(src), "-o", str(part)], timeout=600)
                    if r.returncode != 0 or not part.is_file():
                        raise RealAssetsUnavailable(f"gltf-pipeline failed: {(r.stderr or r.stdout).strip()[-300:]}")
                    part.rename(converted)
                dest = output / f"{a.name}.glb"
                shutil.copyfile(converted, dest)
            else:
                folder = output / a.name  # its own folder: side files keep their relative names
                folder.mkdir(exist_ok=True)
                for f in a.files:
                    shutil.copyfile(src.parent / f, folder / f)
                dest = folder / f"{a.name}{src.suffix}"
                if src.name != dest.name:  # the curated uid is the file stem
                    (folder / src.name).rename(dest)
            got[a.name] = dest
        except RealAssetsUnavailable as err:
            if strict:
                raise
            missing[a.name] = str(err)
    return {"assets": got, "unavailable": missing}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Fetch the real third-party animated glTF assets (data_curation/real_assets.json).")
    ap.add_argument("--output", help="folder to put them in (then: diffusion4d curate --input FOLDER)")
    ap.add_argument("--names", default="", help="comma-separated asset names (default: all)")
    ap.add_argument("--kinds", default="", help=f"comma-separated animation kinds among {','.join(KINDS)}")
    ap.add_argument("--cache", default=None, help="cache folder (default: $D4D_REAL_ASSETS_CACHE or ~/.cache/diffusion4d/real_assets)")
    ap.add_argument("--list", action="store_true", help="print the list (name, kind, origin, licence) and exit")
    args = ap.parse_args(argv)
    if args.list or not args.output:
        for a in asset_list():
            print(f"{a.name}\t{a.kind}\t{a.upstream}\t{a.licence}")
        return 0
    try:
        res = fetch(Path(args.output), [n for n in args.names.split(",") if n] or None,
                    [k for k in args.kinds.split(",") if k] or None, Path(args.cache) if args.cache else None)  # fmt: skip
    except RealAssetsUnavailable as err:
        print(f"real assets unavailable: {err}", file=sys.stderr)
        return 2
    for name, path in res["assets"].items():
        print(f"{name}\t{path}")
    for name, why in res["unavailable"].items():
        print(f"{name}\tunavailable: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
