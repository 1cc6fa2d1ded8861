"""Review fixes for issue 21, each reproduced first: a finished (or resumed) run returning another configuration's
checkpoints, one local model under two ids, a stale vector re-embedded with default options, a missing adapter
hash filled from whatever adapter sits in a folder, `rank --data` ignoring the process count."""

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from taskemb_hub import TaskEmbedding, TuningConfig, tune
from taskemb_hub import embedding as embedding_module
from taskemb_hub.base_model import (canonical_model_id, is_local_id, legacy_id_names_folder, model_fingerprint,
                                    model_fingerprint_v1)
from taskemb_hub.cli import main
from taskemb_hub.embedding import StaleEmbeddingError, load_embedding
from taskemb_hub.errors import AdapterError, IncompatibleEmbeddingError, TaskEmbHubError
from taskemb_hub.methods import EmbeddingOptions
from taskemb_hub.registries import RegistryEntry
from taskemb_hub.registries.local import LocalRegistry


def _resave_adapter_with_other_weights(folder: Path, seed: int = 1) -> None:
    weights = load_file(str(folder / "adapter_model.safetensors"))
    torch.manual_seed(seed)
    save_file({k: torch.randn_like(v) for k, v in weights.items()}, str(folder / "adapter_model.safetensors"))


# ---- 1. a run's checkpoints are its own ----------------------------------------------------------------
def _config(tiny_bert, lr, **kw):
    return TuningConfig(base_model=tiny_bert, max_steps=4, save_steps=[2], batch_size=8, eval_examples=0,
                        learning_rate=lr, **kw)


def test_a_finished_run_never_returns_another_configurations_checkpoints(tiny_bert, sentiment_task, tmp_path):
    """tune A into out/, then B (another learning rate) into out/, then A again: A's vectors, A's recipe."""
    a, b = _config(tiny_bert, 1e-3), _config(tiny_bert, 5e-2)
    first = tune(sentiment_task, a, tmp_path / "out", progress=False)
    with pytest.raises(TaskEmbHubError, match="holds checkpoints of another run"):  # never replaced unasked
        tune(sentiment_task, b, tmp_path / "out", progress=False)
    other = tune(sentiment_task, b, tmp_path / "out", progress=False, resume=False)  # --restart
    assert not torch.equal(first[-1].embedding.vector, other[-1].embedding.vector)
    with pytest.raises(TaskEmbHubError, match="holds checkpoints of another run"):  # A's state: not B's folders
        tune(sentiment_task, a, tmp_path / "out", progress=False)
    again = tune(sentiment_task, a, tmp_path / "out", progress=False, resume=False)
    assert [c.step for c in again] == [2, 4]
    for mine, theirs in zip(first, again):
        assert torch.equal(theirs.embedding.vector, mine.embedding.vector)
        assert theirs.embedding.extra["recipe"]["learning_rate"] == 1e-3
        on_disk = TaskEmbedding.load(theirs.path)  # the folder holds A's again, tied to its adapter
        assert torch.equal(on_disk.vector, mine.embedding.vector) and on_disk.extra["recipe"]["learning_rate"] == 1e-3
    assert not list((tmp_path / "out").glob(".step-*"))  # no staging or backup folder left behind


def test_a_resumed_run_starts_over_when_another_run_overwrote_its_checkpoints(tiny_bert, sentiment_task, tmp_path,
                                                                              monkeypatch):
    """A stopped at step 3 (its step-2 saved), B writes its own step-2 and step-4, A resumes: not from B's step-2."""
    from taskemb_hub.tuning._resume import TuningInterrupted

    from test_tune_hostile import _interrupt_at

    a, b = _config(tiny_bert, 1e-3), _config(tiny_bert, 5e-2)
    whole = tune(sentiment_task, a, tmp_path / "whole", progress=False)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        with pytest.raises(TuningInterrupted):
            tune(sentiment_task, a, tmp_path / "out", progress=False)
    tune(sentiment_task, b, tmp_path / "out", progress=False, resume=False)  # --restart: B replaces A's step-2
    with pytest.raises(TaskEmbHubError, match="holds checkpoints of another run"):  # not resumed from B's step-2
        tune(sentiment_task, a, tmp_path / "out", progress=False)
    resumed = tune(sentiment_task, a, tmp_path / "out", progress=False, resume=False)
    assert [c.step for c in resumed] == [2, 4]
    for mine, expected in zip(resumed, whole):
        assert torch.equal(mine.embedding.vector, expected.embedding.vector)
        assert torch.equal(TaskEmbedding.load(mine.path).vector, expected.embedding.vector)


def test_a_state_whose_checkpoint_adapter_was_resaved_is_not_trusted(tiny_bert, sentiment_task, tmp_path):
    a = _config(tiny_bert, 1e-3)
    first = tune(sentiment_task, a, tmp_path / "out", progress=False)
    _resave_adapter_with_other_weights(first[0].path)  # step-2's adapter is no longer the one this run saved
    with pytest.raises(TaskEmbHubError, match="holds checkpoints of another run"):  # the resaved one is not lost
        tune(sentiment_task, a, tmp_path / "out", progress=False)
    again = tune(sentiment_task, a, tmp_path / "out", progress=False, resume=False)
    assert torch.equal(again[0].embedding.vector, first[0].embedding.vector)
    assert TaskEmbedding.load(again[0].path).adapter_sha256 == embedding_module.adapter_digest(again[0].path)


# ---- 2. a local base model's identity is its fingerprint -------------------------------------------------
def test_identical_files_in_two_differently_named_folders_are_one_model(tiny_bert, sentiment_task, tmp_path):
    final = shutil.copytree(tiny_bert, tmp_path / "final")
    copy = shutil.copytree(tiny_bert, tmp_path / "final-copy")
    assert canonical_model_id(final) == canonical_model_id(copy) and is_local_id(canonical_model_id(copy))
    assert "final" not in canonical_model_id(final)  # the name is for messages only
    cfg = dict(max_steps=2, eval_examples=0, batch_size=8)
    one = tune(sentiment_task, TuningConfig(base_model=str(final), **cfg), None, progress=False)[-1].embedding
    two = tune(sentiment_task, TuningConfig(base_model=str(copy), **cfg), None, progress=False)[-1].embedding
    assert one.signature_hash == two.signature_hash and one.incompatibility(two) is None
    assert one.similarity(two) == pytest.approx(1.0)


def _v1_id(folder, named: bool = True) -> str:
    """The id commit 2cdbd5c recorded for a local folder (`local:<name>@<v1 fingerprint>`), or the `local:<v1>` its
    successor read it as."""
    fingerprint = model_fingerprint_v1(folder)[:12]
    return f"local:{Path(folder).name}@{fingerprint}" if named else f"local:{fingerprint}"


def test_the_v1_fingerprint_is_the_one_the_first_fix_recorded(tmp_path):
    """Pinned to what `git show 2cdbd5c:taskemb_hub/base_model.py` computes for this folder: its ids are recognised
    only while this stays byte for byte the same."""
    from safetensors.torch import save_file as save

    folder = tmp_path / "final"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4, "_name_or_path": "/x/y",
                                                    "transformers_version": "4.0.0"}))
    save({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    assert model_fingerprint_v1(folder) == "1c7f6f0a2f1a01f9ded0700bc4fa19ed98577edc6fe3aeb171453de932d61cbd"
    assert _v1_id(folder) == "local:final@1c7f6f0a2f1a" and model_fingerprint(folder)[:12] != "1c7f6f0a2f1a"


def test_an_id_recorded_with_the_folder_name_is_not_read_as_todays_fingerprint(tiny_bert, tmp_path):
    """A real v1 id (not one built from today's fingerprint): read as `local:<v1>` it would name no model and leave
    the signature hash its registry, index or snapshot filed it under."""
    from taskemb_hub.methods.base import signature_hash

    old, new = _v1_id(tiny_bert), canonical_model_id(tiny_bert)
    assert old.split("@")[1] != new.split(":")[1]  # the fingerprints differ for the same folder
    emb = TaskEmbedding(vector=[1.0, 0.0], task="t", base_model=old, method="bitfit", signature={"method": "bitfit"})
    assert emb.base_model == old and emb.signature_hash == signature_hash({"base_model": old, "method": "bitfit"})
    other = shutil.copytree(tiny_bert, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "initializer_range": 0.5}))
    assert legacy_id_names_folder(old, tiny_bert) and legacy_id_names_folder(_v1_id(tiny_bert, False), tiny_bert)
    assert not legacy_id_names_folder(old, other) and not legacy_id_names_folder(new, tiny_bert)


def _record_base_model(run_path: Path, model_id: str) -> None:
    for name in ("adapter_config.json", "taskemb_checkpoint.json", "taskemb.json"):  # as that version wrote them
        data = json.loads((run_path / name).read_text())
        data["base_model_name_or_path" if name == "adapter_config.json" else "base_model"] = model_id
        (run_path / name).write_text(json.dumps(data))


@pytest.mark.parametrize("named", [True, False], ids=["local:name@v1", "local:v1"])
def test_embed_re_embeds_an_adapter_recorded_with_a_v1_id(tiny_bert, sentiment_task, tmp_path, capsys, named):
    final = shutil.copytree(tiny_bert, tmp_path / "final")
    run = tune(sentiment_task, TuningConfig(base_model=str(final), max_steps=2, eval_examples=0), tmp_path / "run",
               progress=False)[-1]
    _record_base_model(run.path, _v1_id(final, named))
    other = shutil.copytree(tiny_bert, tmp_path / "other")
    (other / "config.json").write_text(json.dumps({**json.loads((other / "config.json").read_text()),
                                                   "initializer_range": 0.5}))
    with pytest.raises(IncompatibleEmbeddingError):  # another model's folder is still refused
        TaskEmbedding.from_adapter(run.path, base_model=str(other))
    assert main(["embed", str(run.path), "--base-model", str(final)]) == 0
    again = TaskEmbedding.load(run.path)
    assert again.base_model == canonical_model_id(final) and again.incompatibility(run.embedding) is None
    assert torch.equal(again.vector, run.embedding.vector)
    capsys.readouterr()


@pytest.mark.parametrize("named", [True, False], ids=["local:name@v1", "local:v1"])
def test_a_v1_entry_against_a_new_target_names_the_fix(tiny_bert, tmp_path, monkeypatch, named):
    from taskemb_hub import base_model
    from taskemb_hub.errors import RegistryError
    from taskemb_hub.ranking.selector import AutoSourceSelector

    final = shutil.copytree(tiny_bert, tmp_path / "final")
    sig = {"method": "bitfit"}
    target = TaskEmbedding(vector=[1.0, 0.0], task="t", base_model=canonical_model_id(final), method="bitfit",
                           signature=sig)
    entry = TaskEmbedding(vector=[1.0, 0.1], task="old", base_model=_v1_id(final, named), method="bitfit",
                          signature=sig)
    at_hand = target.incompatibility(entry)  # the folder was fingerprinted here: named, with the exact command
    assert "folder 'final'" in at_hand and "older taskemb-hub" in at_hand
    assert "taskemb-hub embed <adapter folder> --base-model <the folder 'final'>" in at_hand
    monkeypatch.setattr(base_model, "_SEEN_FOLDERS", {})  # no folder at hand to translate the id
    for reason in (target.incompatibility(entry), entry.incompatibility(target)):
        assert "taskemb-hub embed <adapter folder> --base-model" in reason and "taskemb-hub registry build" in reason
    with pytest.raises(RegistryError, match="taskemb-hub embed <adapter folder> --base-model"):
        AutoSourceSelector([RegistryEntry("old", entry, "old")]).rank(target)


def test_an_index_written_with_v1_ids_ranks_the_identical_saved_embedding(tiny_bert, tmp_path):
    """As the first fix wrote it: rows `local:<name>@<v1>`, filed under the hash of that id."""
    from taskemb_hub.methods.base import signature_hash
    from taskemb_hub.registries import RegistryEntry as Entry
    from taskemb_hub.registries.index import write_index
    from taskemb_hub.ranking.selector import AutoSourceSelector

    old, sig = _v1_id(tiny_bert), {"method": "bitfit", "synthetic": True}
    torch.manual_seed(0)
    entries = [Entry(f"org/t{i}", TaskEmbedding(vector=torch.randn(16), task=f"t{i}", base_model=old, method="bitfit",
                                                signature=sig), f"org/t{i}@{i:040x}") for i in range(4)]
    write_index(entries, tmp_path / "index")
    key = signature_hash({"base_model": old, **sig})
    assert list(json.loads((tmp_path / "index" / "index.json").read_text())["shards"]) == [key]
    entries[2].embedding.save(tmp_path / "target")
    target = TaskEmbedding.load(tmp_path / "target", check_tied=False)
    ranking = AutoSourceSelector.from_index(tmp_path / "index").rank(target, similarity="cosine")
    assert ranking.names[0] == "org/t2" and len(ranking.names) == 4


@pytest.mark.parametrize("base", ["local:final@0123456789ab", " local:0123456789ab ", "final", "org/base"])
def test_an_index_row_is_keyed_as_a_loaded_embedding_hashes_it(base):
    from taskemb_hub.registries._index_files import _mislabelled

    sig = {"method": "bitfit", "synthetic": True}
    loaded = TaskEmbedding(vector=[1.0, 0.0], task="t", base_model=base, method="bitfit", signature=sig)
    assert _mislabelled(loaded.signature_hash, {"signature": sig}, [{"base_model": base, "method": "bitfit"}]) == {}


@pytest.mark.parametrize("file, change", [
    ("vocab.txt", lambda text: text.replace("good", "goad")),
    ("tokenizer_config.json", lambda text: json.dumps({**json.loads(text), "do_lower_case": False})),
    ("tokenizer.json", lambda text: text.replace('"lowercase": true', '"lowercase": false')),
])
def test_the_same_weights_with_another_tokenizer_are_another_model(tiny_bert, tmp_path, file, change):
    copy = shutil.copytree(tiny_bert, tmp_path / "copy")
    assert (copy / file).is_file() and model_fingerprint(copy) == model_fingerprint(tiny_bert)
    before = (copy / file).read_text()
    (copy / file).write_text(change(before))
    assert (copy / file).read_text() != before
    assert model_fingerprint(copy) != model_fingerprint(tiny_bert)
    assert canonical_model_id(copy) != canonical_model_id(tiny_bert)


def test_a_tokenizer_config_saved_elsewhere_is_the_same_model(tiny_bert, tmp_path):
    copy = shutil.copytree(tiny_bert, tmp_path / "copy")
    config = json.loads((copy / "tokenizer_config.json").read_text())
    (copy / "tokenizer_config.json").write_text(json.dumps({**config, "name_or_path": str(copy)}))
    assert model_fingerprint(copy) == model_fingerprint(tiny_bert)


def test_a_sampled_weight_file_has_its_whole_safetensors_header_hashed(tmp_path, monkeypatch):
    """Above the whole-file size only samples of the bytes are hashed; a header that differs only where no
    sample falls (same bytes, another shape) is still another model."""
    from taskemb_hub import base_model

    monkeypatch.setattr(base_model, "_WHOLE_FILE_BYTES", 1024)
    monkeypatch.setattr(base_model, "_SAMPLE_BYTES", 8)  # the first sample: the header's length field only
    data = torch.arange(64 * 1024, dtype=torch.float32)
    for name, shape in (("one", (256, 256)), ("two", (512, 128))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"model_type": "bert"}')
        save_file({"weight": data.reshape(shape)}, str(tmp_path / name / "model.safetensors"))
    sizes = {(tmp_path / n / "model.safetensors").stat().st_size for n in ("one", "two")}
    assert len(sizes) == 1 and sizes.pop() > 1024  # sampled, and the same size
    assert model_fingerprint(tmp_path / "one") != model_fingerprint(tmp_path / "two")


def test_a_bare_folder_name_against_a_local_id_says_to_re_embed(tiny_bert, sentiment_task, tmp_path, capsys):
    """Registries of older versions recorded a local base model by its folder name: the comparison says how to
    fix it, and the fix it names works."""
    final = shutil.copytree(tiny_bert, tmp_path / "final")
    run = tune(sentiment_task, TuningConfig(base_model=str(final), max_steps=2, eval_examples=0), tmp_path / "run",
               progress=False)[-1]
    for name in ("adapter_config.json", "taskemb_checkpoint.json", "taskemb.json"):  # as an older version wrote them
        data = json.loads((run.path / name).read_text())
        data["base_model_name_or_path" if name == "adapter_config.json" else "base_model"] = "final"
        (run.path / name).write_text(json.dumps(data))
    old, new = TaskEmbedding.load(run.path, check_tied=False), run.embedding
    assert old.base_model == "final"
    reason = new.incompatibility(old)
    assert "differs" in reason and "taskemb-hub embed" in reason and "--base-model" in reason
    assert main(["embed", str(run.path), "--base-model", str(final)]) == 0
    assert TaskEmbedding.load(run.path).base_model == canonical_model_id(final)
    assert TaskEmbedding.load(run.path).incompatibility(new) is None
    capsys.readouterr()


def test_the_packaged_registrys_ids_and_signature_hash_are_unchanged():
    from taskemb_hub.base_model import DEFAULT_BASE_MODEL
    from taskemb_hub.default_registry import default_registry_path

    entries = LocalRegistry(default_registry_path()).entries()
    assert {e.embedding.base_model for e in entries} == {DEFAULT_BASE_MODEL}
    assert {e.embedding.signature_hash for e in entries} == {"fd93c1aa840c09b5"}


# ---- 3. a stale vector is re-embedded in its own space ---------------------------------------------------
@pytest.fixture(scope="module")
def unnormalised(tmp_path_factory, tiny_bert):
    """A checkpoint embedded with non-default options (per-module normalisation off)."""
    from conftest import _sentiment_rows
    from taskemb_hub.data import CLASSIFICATION, TaskData

    task = TaskData(name="toy", task_type=CLASSIFICATION, labels=["neg", "pos"],
                    splits={"train": _sentiment_rows(64, 0), "validation": _sentiment_rows(16, 1)})
    cfg = TuningConfig(base_model=tiny_bert, max_steps=4, eval_examples=0,
                       embedding=EmbeddingOptions(per_module_norm=False))
    return tune(task, cfg, tmp_path_factory.mktemp("run"), progress=False)[-1].path


@pytest.fixture
def folder(unnormalised, tmp_path):
    return shutil.copytree(unnormalised, tmp_path / "adapter")


def test_a_stale_vector_is_re_embedded_with_the_options_it_records(folder):
    saved = TaskEmbedding.load(folder)
    assert saved.signature["per_module_norm"] is False
    _resave_adapter_with_other_weights(folder)
    with pytest.warns(UserWarning, match="computed now"):
        served = load_embedding(folder)
    assert served.signature == saved.signature and served.signature_hash == saved.signature_hash
    expected = TaskEmbedding.from_adapter(folder, options=EmbeddingOptions(per_module_norm=False))
    assert torch.equal(served.vector, expected.vector)


def test_the_options_come_from_the_signature_first(folder):
    from taskemb_hub.embedding import recorded_options

    meta = json.loads((folder / "taskemb.json").read_text())
    meta["extra"]["recipe"]["embedding"].update(per_module_norm=True, sketch_dim=4)  # the signature wins
    (folder / "taskemb.json").write_text(json.dumps(meta))
    assert recorded_options(folder / "taskemb.json") == EmbeddingOptions(per_module_norm=False, sketch_dim=4)
    (folder / "taskemb.json").write_text("{not json")
    assert recorded_options(folder / "taskemb.json") == EmbeddingOptions()


def test_a_stale_vector_beside_only_a_pickle_adapter_says_how_to_fix_it(folder):
    weights = load_file(str(folder / "adapter_model.safetensors"))
    torch.save({k: v + 1 for k, v in weights.items()}, folder / "adapter_model.bin")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(StaleEmbeddingError) as err:
        load_embedding(folder)
    message = str(err.value)
    assert "\n" not in message and "taskemb-hub embed" in message and "adapter_model.safetensors" in message
    assert "--allow-pickle" in message


# ---- 4. an embedding records only the adapter hash it knows ----------------------------------------------
def _old_format(folder: Path) -> None:
    """The pair as taskemb-hub wrote it before adapter hashes."""
    emb = TaskEmbedding.load(folder)
    meta = json.loads((folder / "taskemb.json").read_text())
    meta.pop("adapter_sha256")
    (folder / "taskemb.json").write_text(json.dumps(meta))
    save_file({"embedding": emb.vector}, str(folder / "taskemb.safetensors"),
              metadata={"format": "taskemb-hub/1", "signature_hash": emb.signature_hash})


def test_registry_add_of_an_old_pair_beside_a_resaved_adapter_does_not_bless_it(folder, tmp_path, monkeypatch):
    from taskemb_hub.publishing import stage_entry

    _old_format(folder)
    _resave_adapter_with_other_weights(folder)
    monkeypatch.setattr(embedding_module, "_WARNED_UNTIED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entry = LocalRegistry(tmp_path / "reg", create=True).add(folder, name="old")
        staged = tmp_path / "staged"
        staged.mkdir()
        stage_entry(folder, load_embedding(folder), staged)  # what `publish` uploads
    for written in (entry, staged):
        assert json.loads((written / "taskemb.json").read_text()).get("adapter_sha256") is None
        monkeypatch.setattr(embedding_module, "_WARNED_UNTIED", set())
        with pytest.warns(UserWarning, match="predates adapter hashes"):  # still unknown, still said so
            assert TaskEmbedding.load(written).adapter_sha256 is None


def test_save_records_no_hash_it_does_not_know(folder, tmp_path):
    emb = TaskEmbedding.load(folder)
    emb.adapter_sha256 = None
    out = shutil.copytree(folder, tmp_path / "copy")
    emb.save(out)
    assert json.loads((out / "taskemb.json").read_text()).get("adapter_sha256") is None


def test_an_adapter_resaved_while_being_embedded_is_refused(folder, monkeypatch):
    read = embedding_module.read_adapter

    def racing(path, **kw):
        files = read(path, **kw)
        _resave_adapter_with_other_weights(Path(path))  # a tune writing the folder meanwhile
        return files

    monkeypatch.setattr(embedding_module, "read_adapter", racing)
    with pytest.raises(AdapterError, match="changed while they were read"):
        TaskEmbedding.from_adapter(folder)


def test_tune_records_the_hash_of_the_adapter_it_saved(unnormalised):
    import hashlib

    meta = json.loads((unnormalised / "taskemb.json").read_text())
    assert meta["adapter_sha256"] == hashlib.sha256((unnormalised / "adapter_model.safetensors").read_bytes()).hexdigest()


# ---- 5. rank --data under several processes ---------------------------------------------------------------
def _launched_with(monkeypatch, processes: int) -> None:
    """This process as one of `processes` started by `accelerate launch` (which sets WORLD_SIZE), before any
    Accelerator is made."""
    from accelerate import PartialState

    monkeypatch.setattr(PartialState, "_shared_state", {})
    monkeypatch.setenv("WORLD_SIZE", str(processes))


@pytest.fixture
def recorded_configs(monkeypatch):
    """`tune` as target_from_data calls it, recording the config instead of tuning."""
    from taskemb_hub.tuning import training

    configs = []

    def fake_tune(task, cfg, out, **kw):
        configs.append(cfg)
        raise _Stop

    monkeypatch.setattr(training, "tune", fake_tune)
    return configs


class _Stop(Exception):
    pass


def _selector_with_global_batch(global_batch, batch=16):
    from taskemb_hub.ranking.selector import AutoSourceSelector

    from test_recipe import REGISTRY_RECIPE, emb

    recipe = {**REGISTRY_RECIPE, "batch_size": batch, "global_batch_size": global_batch}
    return AutoSourceSelector.from_embeddings([emb("a", [1.0, 0.1, 0.0], recipe=recipe),
                                               emb("b", [0.0, 0.2, 1.0], recipe=recipe)])


@pytest.mark.parametrize("processes, global_batch, expected", [
    (1, 16, (16, 1)), (2, 16, (8, 1)), (2, 64, (16, 2)), (4, 64, (16, 1)),
])
def test_rank_from_data_splits_the_global_batch_over_the_processes(
        monkeypatch, recorded_configs, sentiment_task, processes, global_batch, expected):
    from taskemb_hub.tuning import targets

    _launched_with(monkeypatch, processes)
    with pytest.raises(_Stop):
        targets.target_from_data(sentiment_task, _selector_with_global_batch(global_batch), progress=False)
    cfg = recorded_configs[-1]
    assert (cfg.batch_size, cfg.gradient_accumulation_steps) == expected
    assert cfg.batch_size * cfg.gradient_accumulation_steps * processes == global_batch


def test_rank_from_data_refuses_a_global_batch_the_processes_cannot_split(monkeypatch, recorded_configs,
                                                                          sentiment_task):
    from taskemb_hub.tuning import targets

    _launched_with(monkeypatch, 3)
    with pytest.raises(TaskEmbHubError, match="global batch of 16 examples cannot be split over 3 processes"):
        targets.target_from_data(sentiment_task, _selector_with_global_batch(16), progress=False)
    assert recorded_configs == []


def test_the_process_count_is_the_launchers_then_accelerates(monkeypatch):
    from accelerate import PartialState

    from taskemb_hub.tuning.recipe import process_count

    _launched_with(monkeypatch, 4)
    assert process_count() == 4
    monkeypatch.delenv("WORLD_SIZE")
    assert process_count() == 1
    monkeypatch.setattr(PartialState, "_shared_state", {"num_processes": 2})  # as an Accelerator leaves it
    assert process_count() == 2


def test_cli_rank_data_refuses_in_one_line_when_the_processes_cannot_split_the_batch(
        monkeypatch, recorded_configs, tmp_path, capsys):
    from taskemb_hub.ranking import selector as selector_module

    from conftest import _sentiment_rows

    (tmp_path / "task.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n"
                                                                 for r in _sentiment_rows(64, 0)))
    monkeypatch.setattr(selector_module.AutoSourceSelector, "from_default",
                        classmethod(lambda cls, **kw: _selector_with_global_batch(16)))
    _launched_with(monkeypatch, 3)
    assert main(["rank", "--data", str(tmp_path / "task.csv"), "--registry", "default"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot be split over 3 processes" in err and "Traceback" not in err
