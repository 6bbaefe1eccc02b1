"""The on-disk compile cache: atomic, verified, safe under concurrent processes.

An entry is a folder ``<root>/kernels/<key[:2]>/<key>/`` holding the files a backend produced (the
generated Triton/PTX source stays readable there, beside any binary) and ``manifest.json`` with the key,
free-form metadata and the SHA-256 of every file.

- **Atomic**: an entry is written into a private temporary folder and renamed into place in one step, so a
  reader sees a whole entry or none.
- **Verified**: every read checks the manifest and each file's hash; a corrupt, truncated or incomplete entry
  is reported with a :class:`CacheWarning`, moved aside and treated as a miss (the caller recompiles and
  the new entry replaces it). Nothing read from the cache is trusted unchecked.
- **Concurrent**: two processes that compile the same kernel at once both write private folders; the first
  rename wins and the other process drops its copy (both results are identical by construction).

>>> import tempfile
>>> c = DiskCache(tempfile.mkdtemp())
>>> c.get("ab" * 32) is None
True
>>> c.put("ab" * 32, {"kernel.vm": "kernel k() grid(1) {}"}, {"backend": "numpy"})
>>> c.get("ab" * 32)["kernel.vm"]
'kernel k() grid(1) {}'
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

FORMAT = 1


class CacheWarning(UserWarning):
    """A cache entry could not be trusted (it is rebuilt) or the cache folder cannot be used."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_key(parts: dict) -> str:
    """A stable hex key for a JSON-serialisable description of everything that affects the output."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return digest(text.encode())


class DiskCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    # ------------------------------------------------------------------------------ layout
    def entry(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"bad cache key {key!r}")
        return self.root / "kernels" / key[:2] / key

    def _scratch(self, kind: str) -> Path:
        p = self.root / kind
        p.mkdir(parents=True, exist_ok=True)
        return p

    # ------------------------------------------------------------------------------ read
    def get(self, key: str) -> dict[str, str | bytes] | None:
        """The files of a valid entry, or None (a corrupt entry is reported and moved aside)."""
        d = self.entry(key)
        if not d.exists():
            self.misses += 1
            return None
        try:
            files = self._read(d, key)
        except _Corrupt as e:
            self.corrupt += 1
            self.misses += 1
            warnings.warn(CacheWarning(f"vmlang cache entry {d} is corrupt ({e}); recompiling and replacing it"),
                          stacklevel=3)
            self._discard(d)
            return None
        self.hits += 1
        return files

    def meta(self, key: str) -> dict | None:
        try:
            return json.loads((self.entry(key) / "manifest.json").read_text())["meta"]
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def _read(d: Path, key: str) -> dict[str, str | bytes]:
        try:
            manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _Corrupt("no manifest.json") from None
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise _Corrupt(f"unreadable manifest: {e}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
            raise _Corrupt("manifest does not describe this key")
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise _Corrupt("manifest lists no files")
        out: dict[str, str | bytes] = {}
        for name, info in files.items():
            try:
                data = (d / name).read_bytes()
            except OSError:
                raise _Corrupt(f"missing file {name}") from None
            if not isinstance(info, dict) or digest(data) != info.get("sha256") or len(data) != info.get("size"):
                raise _Corrupt(f"{name} does not match its checksum")
            out[name] = data.decode("utf-8") if info.get("text") else data
        return out

    # ------------------------------------------------------------------------------ write
    def put(self, key: str, files: dict[str, str | bytes], meta: dict | None = None) -> None:
        """Store an entry atomically. Errors writing the cache warn and are otherwise ignored."""
        d = self.entry(key)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=key[:16] + ".", dir=self._scratch("tmp")))
            manifest = {"format": FORMAT, "key": key, "meta": meta or {}, "files": {}}
            for name, data in files.items():
                if "/" in name or name.startswith(".") or name == "manifest.json":
                    raise ValueError(f"bad cache file name {name!r}")
                raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                _write(tmp / name, raw)
                manifest["files"][name] = {"sha256": digest(raw), "size": len(raw), "text": isinstance(data, str)}
            _write(tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            d.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, d)
                return
            except OSError:
                pass               # an entry is there already: keep it if valid, else replace it
            try:
                self._read(d, key)
                shutil.rmtree(tmp, ignore_errors=True)
                return
            except _Corrupt:
                self._discard(d)
            try:
                os.rename(tmp, d)
            except OSError:        # lost a race with another writer of the same entry
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as e:
            warnings.warn(CacheWarning(f"cannot write the vmlang cache at {self.root}: {e}"), stacklevel=3)

    def discard(self, key: str) -> None:
        """Remove an entry (e.g. one that passed its checksums but does not load)."""
        self._discard(self.entry(key))

    def _discard(self, d: Path) -> None:
        """Move an entry aside atomically, then delete it."""
        try:
            trash = self._scratch("trash") / f"{d.name}.{uuid.uuid4().hex}"
            os.rename(d, trash)
            shutil.rmtree(trash, ignore_errors=True)
        except OSError:
            pass                   # already moved by another process

    def clear(self) -> None:
        shutil.rmtree(self.root / "kernels", ignore_errors=True)


class _Corrupt(Exception):
    pass


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------------- small JSON records
def read_json(path: Path) -> dict | None:
    """A JSON object written by :func:`write_json`, or None if missing; a corrupt file warns and is removed."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(obj, dict) or obj.get("sha256") != digest(
                json.dumps(obj.get("data"), sort_keys=True).encode()):
            raise ValueError("checksum mismatch")
        return obj["data"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        warnings.warn(CacheWarning(f"vmlang cache file {path} is corrupt ({e}); ignoring it"), stacklevel=3)
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


def write_json(path: Path, data: dict) -> None:
    """Write a JSON object with a checksum, atomically (temporary file + rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"data": data, "sha256": digest(json.dumps(data, sort_keys=True).encode())},
                          sort_keys=True, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(body.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(CacheWarning(f"cannot write {path}: {e}"), stacklevel=3)
