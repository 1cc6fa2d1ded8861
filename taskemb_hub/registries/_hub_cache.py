"""What a Hub sync keeps beside the HF cache: the last sync's parsed entries (one memory-mapped index, so a
re-sync reads no file again) and the last listing (so an offline or failed listing serves the last sync)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

from ..embedding import default_mode
from ..errors import RegistryError
from ._hub_refs import RepoRef
from .base import RegistryEntry


class SyncCache:
    """`HubRegistry`'s cache beside the HF cache (a mixin: it reads the registry's endpoint and filters)."""

    # ---- the last sync's parsed entries: a re-sync reads one memory-mapped index, not every file ----
    def _local_index_dir(self) -> Path:
        return self._manifest_path().with_suffix("")

    def _load_local(self) -> dict[str, tuple[str, RegistryEntry]]:
        from ._index_files import read_index

        folder = self._local_index_dir()
        try:
            with _lock(folder):
                contents = read_index(folder)
        except Exception:  # absent, or from another version: the files in the HF cache are the truth
            return {}
        return {e.name: (contents.shas[e.name], e) for e in contents.entries if e.name in contents.shas}

    def _store_local(self, entries: list[RegistryEntry]) -> None:
        """Write the parsed entries next to the HF cache (float32: exactly what was read), swapped in atomically."""
        import shutil

        import torch

        from ._index_files import write_index

        import tempfile

        folder = self._local_index_dir()
        staging = None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
            write_index(entries, staging, source={"endpoint": self.endpoint, "tag": self.tag}, dtype=torch.float32)
            os.chmod(staging, default_mode(directory=True))  # mkdtemp's 0700 would hide it from a shared cache's group
            with _lock(folder):
                old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
                if folder.exists():
                    os.replace(folder, old / "index")
                os.replace(staging, folder)
                shutil.rmtree(old, ignore_errors=True)
        except Exception as err:  # a read-only or full cache only costs the next sync its speed
            warnings.warn(f"Could not keep the parsed sync beside the cache ({type(err).__name__}); the next sync "
                          "reads the cached files again.", stacklevel=3)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    # ---- the last listing, for offline use ------------------------------------------------
    def _manifest_path(self) -> Path:
        from huggingface_hub import constants

        key = json.dumps([self.endpoint, self.tag, self.author, self.base_model, self.method, self.include_untagged,
                          self.max_file_bytes])
        return Path(constants.HF_HUB_CACHE) / ".taskemb-hub" / f"sync-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"

    def _save_manifest(self, refs: list[RepoRef]) -> None:
        """Keep the listing for offline use (best effort: a cache that cannot be written costs only that)."""
        import tempfile

        path = self._manifest_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                json.dump({"synced_at": time.time(),
                           "repos": [{k: v for k, v in r.__dict__.items() if k != "meta"} for r in refs]}, handle)
            os.chmod(tmp, default_mode())
            os.replace(tmp, path)
        except OSError as err:
            warnings.warn(f"Could not keep the repo listing for offline use ({type(err).__name__}).", stacklevel=3)

    def _cached_listing(self, reason: str) -> list[RepoRef]:
        path = self._manifest_path()
        if not path.is_file():
            raise RegistryError(f"Cannot list the Hub registry at {self.endpoint}: {reason}, and no earlier sync is "
                                "cached. Check the endpoint and your connection, then retry.")
        try:
            return [RepoRef(**r) for r in json.loads(path.read_text())["repos"]]
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise RegistryError(f"Cannot list the Hub registry at {self.endpoint}: {reason}, and the cached listing is "
                                "unreadable. Check the endpoint and your connection, then retry.") from err


def _cached(ref: RepoRef, name: str) -> Path | None:
    """The file of `ref`'s commit in the HF cache, found without a request (None when not there)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(ref.repo_id, name, revision=ref.sha)
    return Path(path) if isinstance(path, str) else None


def _lock(folder: Path):
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder) + ".lock", timeout=60)

