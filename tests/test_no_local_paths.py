"""No local path in any file that leaves the machine (issue 21): what `publish` uploads, what a selector's
`push_to_hub` / `save_pretrained` write, the committed packaged registry and cards. One rule
(`cards.public_source`): a Hub dataset id is kept, anything else is `local:<its final name>`."""

import json
import re
from pathlib import Path

import pytest

from taskemb_hub import TaskEmbedding, TuningConfig, tune
from taskemb_hub.cards import public_source
from taskemb_hub.publishing import publish, safetensors_metadata
from taskemb_hub.registries.local import LocalRegistry
from taskemb_hub.ranking.selector import AutoSourceSelector


BASE = "test/tiny-bert"
ROOT = Path(__file__).resolve().parents[1]
# "/a/b" not inside a URL or a relative path ("https://x/y", "owner/name", "shards/*.parquet")
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\])`*-])/(?:[\w.@+~-]+/)+[\w.@+~-]*")


def _text(name: str, content: bytes) -> str:
    """What a reader of the file sees: a parquet's cells, a safetensors header, any other file's text."""
    if name.endswith(".parquet"):
        import io

        import pyarrow.parquet as pq

        return json.dumps(pq.read_table(io.BytesIO(content)).to_pylist(), default=str)
    if name.endswith(".safetensors"):
        import struct

        size = struct.unpack("<Q", content[:8])[0]
        return content[8:8 + size].decode()
    return content.decode("utf-8", errors="replace")


def _leaks(files: dict[str, bytes], *needles: str) -> list[str]:
    found = []
    for name, content in files.items():
        text = _text(name, content)
        found += [f"{name}: {n}" for n in ("/work", "../", str(Path.home()), *needles) if n and n in text]
        found += [f"{name}: {m}" for m in ABSOLUTE_PATH.findall(text)]
    return found


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def tuned_from_a_relative_folder(tiny_bert, tmp_path, monkeypatch):
    """A checkpoint tuned in `work/` on the task folder `tasks/toy-sentiment` (a relative path, like a
    Hub id in form), as `tune --task tasks/toy-sentiment` records it."""
    from conftest import _sentiment_rows
    from taskemb_hub.data import CLASSIFICATION, TaskData

    work = tmp_path / "work"
    (work / "tasks" / "toy-sentiment").mkdir(parents=True)
    monkeypatch.chdir(work)
    task = TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"], source="tasks/toy-sentiment",
                    splits={"train": _sentiment_rows(64, 0), "validation": _sentiment_rows(16, 1)})
    cfg = TuningConfig(method="bitfit", base_model=tiny_bert, max_steps=4, eval_examples=0)
    return tune(task, cfg, work / "run", progress=False)[-1].path


def test_the_scrubbing_rule():
    assert public_source("stanfordnlp/sst2") == "stanfordnlp/sst2" and public_source("glue") == "glue"
    assert public_source("../shared/data/tasks/rotten_tomatoes") == "local:rotten_tomatoes"
    assert public_source("/work/shared/data/tasks/fever/") == "local:fever"
    assert public_source("C:\\data\\reviews.csv") == "local:reviews.csv"
    assert public_source("local:/etc/passwd") == "local:passwd"  # a hostile marked value is still a name
    assert public_source("local:rotten_tomatoes") == "local:rotten_tomatoes"  # idempotent
    assert public_source(str(ROOT / "taskemb_hub")) == "local:taskemb_hub"
    assert public_source("..") is None and public_source("") is None


def test_publish_from_another_folder_uploads_no_path_and_no_local_dataset_id(hub, tuned_from_a_relative_folder,
                                                                             tmp_path, tiny_bert, monkeypatch):
    from huggingface_hub import ModelCard

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # `tasks/toy-sentiment` does not exist here: it must not pass for a Hub id
    publish(tuned_from_a_relative_folder, "alice/toy", endpoint=hub.endpoint, base_model_id=BASE)
    files = hub.state.repo("alice/toy").files
    assert _leaks(files, str(tmp_path), tiny_bert) == []
    card = ModelCard(files["README.md"].decode())
    assert not card.data.datasets and "tasks/toy-sentiment" not in files["README.md"].decode()
    for name in ("taskemb_checkpoint.json", "taskemb.json"):
        meta = json.loads(files[name])
        assert (meta.get("extra") or meta)["source"] == "local:toy-sentiment"


def test_a_pushed_and_a_saved_selector_carry_no_path(hub, tmp_path, tuned_from_a_relative_folder):
    registry = LocalRegistry(tmp_path / "registry", create=True)
    emb = TaskEmbedding.load(tuned_from_a_relative_folder)
    for name, source in (("abs", str(tmp_path / "data" / "abs-task")), ("rel", "../shared/data/tasks/rt"),
                         ("hub", "stanfordnlp/sst2")):
        registry.add(TaskEmbedding(vector=emb.vector, task=name, base_model=emb.base_model, method=emb.method,
                                   signature=emb.signature, extra={"source": source}), name=name)
    selector = AutoSourceSelector.from_local(registry.path)
    selector.push_to_hub("alice/selector")
    selector.save_pretrained(tmp_path / "saved")
    pushed, saved = hub.state.repo("alice/selector").files, _folder_files(tmp_path / "saved")
    for files in (pushed, saved):
        assert _leaks(files, str(tmp_path)) == []
        rows = json.loads(_text(next(n for n in files if n.endswith(".parquet")), files[next(
            n for n in files if n.endswith(".parquet"))]))
        assert sorted(json.loads(r["extra"])["source"] for r in rows) == ["local:abs-task", "local:rt",
                                                                          "stanfordnlp/sst2"]
    assert AutoSourceSelector.from_pretrained(tmp_path / "saved").rank(emb).names[0] in {"abs", "rel", "hub"}


def test_the_packaged_selector_saved_for_sharing_carries_no_path(tmp_path):
    AutoSourceSelector.from_default().save_pretrained(tmp_path / "default")
    assert _leaks(_folder_files(tmp_path / "default"), str(tmp_path)) == []


def test_the_committed_registry_and_cards_name_no_local_path():
    from taskemb_hub.default_registry import default_registry_path

    folders = [default_registry_path().parent, ROOT / "cards"]
    files = {str(p.relative_to(ROOT)): p.read_bytes() for folder in folders for p in folder.rglob("*")
             if p.is_file() and p.suffix in (".json", ".md", ".safetensors")}
    assert len(files) > 48 and _leaks(files) == []
    sources = {json.loads(files[n])["extra"].get("source") for n in files if n.endswith("entries/fever/taskemb.json")}
    assert sources == {"local:fever"}


def test_a_path_in_an_adapter_header_is_refused_before_upload(hub, tuned_from_a_relative_folder, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from taskemb_hub.errors import RegistryError

    folder = shutil.copytree(tuned_from_a_relative_folder, tmp_path / "copy")
    weights = load_file(str(folder / "adapter_model.safetensors"))
    save_file(weights, str(folder / "adapter_model.safetensors"), metadata={"format": "pt", "from": str(tmp_path)})
    assert safetensors_metadata(folder / "adapter_model.safetensors")["from"] == str(tmp_path)
    with pytest.raises(RegistryError, match="adapter_model.safetensors names the local path"):
        publish(folder, "alice/leaky", endpoint=hub.endpoint, base_model_id=BASE)
    assert "alice/leaky" not in hub.state.repos
