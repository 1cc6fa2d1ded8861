"""An answer's download files, written on demand (issue 23: an answer carries no file).

A lookup answers with its message, table and figures' data only; what its three files are written from
(`Downloads`: the ranking, the table's records, the target's label, the registry's public name) is kept
in the visitor's session (`gr.State`) and written only when asked: the page's *Prepare downloads* button,
the `/downloads` API endpoint (`gradio_client`: `client.predict(api_name="/downloads")` after a lookup with
the same client), or `Downloads.write` in Python. The files are those every answer wrote before: the
ranking as CSV and JSON and the target's embedding as a zip (`taskemb.safetensors` + `taskemb.json`), with
the same names, formats and contents, scrubbed of server paths.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..embedding import TaskEmbedding
from ..ranking.selector import Ranking
from ._config import SpaceConfig
from ._uploads import safe_stem, scrub_obj

CLEANUP_EVERY_S = 60.0  # old answers' files are looked for at most this often
CSV_FIELDS = ["rank", "source", "task", "score", "method", "step", "train_size", "metric", "metric_name",
              "repo_url", "dataset", "dataset_url"]


@dataclass
class Downloads:
    """What an answer's download files are written from; kept in the session, written when asked.

    Args:
        ranking: the answer's ranking (its target is the embedding the zip holds).
        records: the ranking's rows with the table's links (`_answers._table`), one CSV / JSON row each.
        target_label: the target's name as the answer shows it (the files' names derive from it).
        registry: the registry's public name (`_registry_state.public_source`), recorded in the JSON.

    Example:
        ```python
        >>> answer = rank_registry(state, config, "rotten_tomatoes", top_k=5)
        >>> csv_path, json_path, zip_path = answer.downloads.write(config)
        ```
    """

    ranking: Ranking
    records: list[dict[str, Any]]
    target_label: str
    registry: str
    _written: tuple[str, str, str] | None = field(default=None, repr=False, compare=False)

    def payload(self) -> dict[str, Any]:
        """The JSON download's content (what the MCP tools return too), scrubbed of server paths.

        Returns:
            `Ranking.to_dict()` with the target's label, the records and the registry, as plain JSON values.

        Example:
            ```python
            >>> answer.downloads.payload()["ranking"][0]["source"]
            ```
        """
        payload = {**self.ranking.to_dict(), "target": self.target_label, "ranking": self.records,
                   "registry": self.registry}
        return scrub_obj(json.loads(json.dumps(payload, default=str)))

    def write(self, config: SpaceConfig) -> tuple[str, str, str]:
        """Write the three files (once per answer: a second call returns the same files while they exist).

        Args:
            config: the Space's config (`work_dir`, `keep_files_s`: where, and for how long, files are kept).

        Returns:
            The paths of the ranking CSV, the ranking JSON and the embedding zip, in a fresh `answer-*` folder.

        Example:
            ```python
            >>> csv_path, json_path, zip_path = answer.downloads.write(SpaceConfig())
            ```
        """
        if self._written and all(Path(p).is_file() for p in self._written):
            return self._written
        folder = _work_dir(config)
        stem = safe_stem(self.target_label)
        csv_path = folder / f"ranking-{stem}.csv"
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(scrub_obj(self.records))
        json_path = folder / f"ranking-{stem}.json"
        json_path.write_text(json.dumps(self.payload(), indent=2), encoding="utf-8")
        self._written = (str(csv_path), str(json_path), str(_embedding_zip(self.ranking.target, folder, stem)))
        return self._written


_last_cleanup: dict[str, float] = {}


def _work_dir(config: SpaceConfig) -> Path:
    """A fresh folder for one answer's files; folders older than `config.keep_files_s` go (checked once a minute)."""
    root = Path(config.work_dir or Path(tempfile.gettempdir()) / "taskemb-space")
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    if now - _last_cleanup.get(str(root), 0.0) >= min(CLEANUP_EVERY_S, config.keep_files_s):
        _last_cleanup[str(root)] = now
        _remove_old_answers(root, now - config.keep_files_s)
    return Path(tempfile.mkdtemp(dir=root, prefix="answer-"))


def _remove_old_answers(root: Path, cutoff: float) -> None:
    for old in root.iterdir():  # answers' files are copied by the server when served; old ones can go
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _embedding_zip(target: TaskEmbedding, folder: Path, stem: str) -> Path:
    """The target's embedding as a download (`taskemb.safetensors` + `taskemb.json`, the bytes `TaskEmbedding.save`
    writes), its metadata scrubbed of server paths (recipe, source, ...); built in memory, one file written."""
    import zipfile

    from ..embedding import EMBEDDING_NAME, FORMAT_VERSION, METADATA_NAME, _safetensors_bytes

    header = {"format": FORMAT_VERSION, "signature_hash": target.signature_hash}
    if target.adapter_sha256:
        header["adapter_sha256"] = target.adapter_sha256
    meta = scrub_obj(json.loads(json.dumps(_metadata(target))))
    zip_path = folder / f"taskemb-{stem}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(METADATA_NAME, json.dumps(meta, indent=2))
        archive.writestr(EMBEDDING_NAME, _safetensors_bytes(target.vector, header), zipfile.ZIP_STORED)  # floats
    return zip_path


def _metadata(target: TaskEmbedding) -> dict[str, Any]:
    """`target.metadata()` without its deep copy of the vector (`dataclasses.asdict` copies every field)."""
    import dataclasses

    from ..embedding import FORMAT_VERSION

    meta = {f.name: getattr(target, f.name) for f in dataclasses.fields(target) if f.name != "vector"}
    if any(dataclasses.is_dataclass(v) for v in meta.values()):
        return target.metadata()
    meta.update(format=FORMAT_VERSION, dim=target.dim, signature_hash=target.signature_hash)
    return meta
