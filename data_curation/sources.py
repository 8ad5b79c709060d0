"""Asset sources -> lists of :class:`AssetTask`: local files, Objaverse, the procedural generator.

Captions come from the source (Objaverse name/description, the generator) and may be
overridden by a Cap3D-style captions CSV (``uid,caption`` lines, no header).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from diffusion4d.errors import UserError
from diffusion4d.io.names import is_safe_name, make_safe_name

from .curate_asset import AssetTask
from .curate_config import parse_shard

logger = logging.getLogger(__name__)

GLTF_SUFFIXES = (".glb", ".gltf")
#: formats the Blender backend imports (besides glTF)
BLENDER_SUFFIXES = (".fbx", ".obj", ".dae", ".abc", ".usd", ".usda", ".usdc", ".usdz", ".blend", ".ply", ".stl", ".x3d")


def read_captions_csv(path) -> Dict[str, str]:
    """Cap3D-style captions: ``uid,caption`` per line (no header; quoted captions allowed).

    UTF-8 with or without a byte-order mark; blank lines are skipped. An unterminated quote, a
    row without a caption or with an empty uid, or text that is not UTF-8 is a UserError naming
    the file and the line.
    """
    import io

    path = Path(path)
    if not path.is_file():
        raise UserError(f"captions file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        line = raw[: err.start + bom].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (captions CSV must be UTF-8)") from None
    out: Dict[str, str] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1  # line where the next row starts
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                raise UserError(f"{path}:{start}: unterminated quoted field (a '\"' opened on this line is never closed)") from None
            raise UserError(f"{path}:{reader.line_num}: malformed CSV row ({err})") from None
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip():
            shown = ",".join(row)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise UserError(f"{path}:{line}: malformed row {shown!r}: expected uid,caption")
        out[row[0].strip()] = ",".join(row[1:]).strip()
    return out


def local_tasks(inputs: Sequence[str], renderer: str = "fast") -> List[AssetTask]:
    """Files or folders (searched recursively) of .glb/.gltf (and Blender formats with renderer=blender)."""
    suffixes = GLTF_SUFFIXES + (BLENDER_SUFFIXES if renderer == "blender" else ())
    files: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        elif p.is_file():
            if p.suffix.lower() not in suffixes:
                hint = " (use --renderer blender for other formats)" if p.suffix.lower() in BLENDER_SUFFIXES else ""
                raise UserError(f"{p}: unsupported format {p.suffix!r}{hint}")
            files.append(p)
        else:
            raise UserError(f"input not found: {p}")
    tasks, seen = [], {}
    for f in files:
        uid = make_safe_name(f.stem)  # the uid becomes a folder: stems with spaces, '..' etc. get a safe form
        if uid in seen:  # same stem in two folders: keep both, disambiguated by a path hash
            uid = f"{uid[:119]}-{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]}"
        seen[uid] = f
        tasks.append(AssetTask(uid=uid, path=str(f.resolve()), source="local"))
    return tasks


def procedural_tasks(count: int, folder, seed: int = 0) -> List[AssetTask]:
    """Generate ``count`` procedural assets into ``folder`` (skipped when already there)."""
    from .procedural import generate_assets

    assets = generate_assets(folder, count, seed=seed)
    return [AssetTask(uid=a.uid, path=str(a.path), source="procedural", caption=a.caption, extra={"family": a.family})
            for a in assets]


def read_uid_list(path) -> List[str]:
    """One uid per line (the official curated id lists); blank lines and ``#`` comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"uid list not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (one uid per line)") from None
    uids = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip().strip(",").strip('"')
        if line:
            uids.append(line[:-4] if line.endswith(".glb") else line)
    return list(dict.fromkeys(uids))


def _objaverse_caption(ann: dict) -> str:
    name = str(ann.get("name") or "").strip()
    desc = " ".join(str(ann.get("description") or "").split())
    if name and desc:
        return f"{name}: {desc}"[:300]
    return (name or desc)[:300]


def objaverse_tasks(uids: Sequence[str], store: Optional[str] = None) -> List[AssetTask]:
    """Resolve uids through the objaverse package (``load_objects`` + ``load_annotations``).

    ``store`` is the local Objaverse folder (``objaverse._VERSIONED_PATH``: ``object-paths.json.gz``,
    ``glbs/``, ``metadata/``). uids it does not know, or whose download fails, become tasks that
    fail with a specific reason.
    """
    import objaverse

    if store:
        if not Path(store).is_dir():
            raise UserError(f"--objaverse-path {store} is not a folder")
        objaverse._VERSIONED_PATH = str(store)
    try:
        known = objaverse._load_object_paths()
    except Exception as err:
        raise UserError(f"cannot read the Objaverse object index in {objaverse._VERSIONED_PATH} ({type(err).__name__}); "
                        "pass --objaverse-path to a local mirror holding object-paths.json.gz") from None
    present = [u for u in uids if is_safe_name(u) and u in known]  # unsafe uids fail in the runner (safe-name gate)
    paths: Dict[str, str] = {}
    try:
        paths = objaverse.load_objects(present, download_processes=1)
    except Exception as err:  # offline / partial store: resolve one by one
        logger.warning("objaverse.load_objects failed (%s); resolving uids one by one", type(err).__name__)
        for u in present:
            try:
                paths.update(objaverse.load_objects([u], download_processes=1))
            except Exception:
                pass
    try:
        annotations = objaverse.load_annotations(present) if present else {}
    except Exception as err:
        logger.warning("objaverse.load_annotations failed (%s): no captions/licences", type(err).__name__)
        annotations = {}
    tasks = []
    for u in uids:
        ann = annotations.get(u, {})
        extra = {"license": ann.get("license", ""), "objaverse_name": ann.get("name", "")}
        if u not in known:
            tasks.append(AssetTask(u, None, "objaverse", error="missing_source: uid not in the Objaverse object index", extra=extra))
        elif u not in paths:
            tasks.append(AssetTask(u, None, "objaverse", error="missing_source: object not in the local store and not downloadable", extra=extra))
        else:
            tasks.append(AssetTask(u, paths[u], "objaverse", caption=_objaverse_caption(ann), extra=extra))
    return tasks


def shard_of(uid: str, num_shards: int) -> int:
    """Deterministic shard of a uid (stable across runs, machines and list orders)."""
    return int(hashlib.md5(uid.encode()).hexdigest(), 16) % num_shards


def select_shard(tasks: Iterable[AssetTask], shard: str) -> List[AssetTask]:
    i, n = parse_shard(shard)
    return [t for t in tasks if shard_of(t.uid, n) == i]


def apply_captions(tasks: List[AssetTask], captions: Dict[str, str]) -> None:
    for t in tasks:
        if t.uid in captions:
            t.caption = captions[t.uid]
