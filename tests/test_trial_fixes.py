"""A new user's trial from a clean clone (issue 21): each bad input below ended in a traceback, a misleading
message, a silent loss or needed the network; now each is one line (exit 2) naming the problem and the fix."""

import json
import os
import sys

import pytest

from taskemb_hub import TuningConfig, tune
from taskemb_hub.cli import build_parser, main
from taskemb_hub.errors import TaskEmbHubError

from test_cli_bad_input import one_line_error, run

BASE = "sentence-transformers/all-MiniLM-L6-v2"


def _cfg(tiny_bert, **kw):
    return TuningConfig(**{"base_model": tiny_bert, "method": "bitfit", "max_steps": 2, "batch_size": 8,
                           "eval_examples": 0, **kw})


@pytest.fixture(scope="module")
def task_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "task.csv"
    path.write_text("text,label\n" + "".join(f"{'good' if i % 2 else 'bad'} movie {i},{i % 2}\n" for i in range(60)))
    return path


# ---- 1. tracebacks -------------------------------------------------------------------------------------------
def test_tune_into_a_file_is_refused_before_the_model_loads(tiny_bert, task_csv, tmp_path, capsys, monkeypatch):
    from taskemb_hub.tuning import training

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(training, "resolve_base_model", no_model)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    code, _, err = run(capsys, "tune", "--task", task_csv, "--out", afile, "--base-model", tiny_bert, "--max-steps", 2)
    one_line_error(code, err, "is a file", "--out")
    code, _, err = run(capsys, "tune", "--task", task_csv, "--out", afile / "sub", "--base-model", tiny_bert)
    one_line_error(code, err, "a file", "--out")
    assert afile.read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes read-only folders")
def test_tune_into_a_read_only_folder_is_refused(tiny_bert, task_csv, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(TaskEmbHubError, match="cannot be written"):
            tune(str(task_csv), _cfg(tiny_bert), locked / "run", progress=False)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("model", ["/tmp/nosuchmodel-taskemb", "./nosuch", "not a//model"])
def test_a_missing_base_model_is_one_line(model, task_csv, tmp_path, capsys):
    code, _, err = run(capsys, "tune", "--task", task_csv, "--out", tmp_path / "o", "--base-model", model)
    one_line_error(code, err, f"{model} is neither a local model folder nor a Hub model id",
                   "pass a folder holding config.json or a Hub id")


def test_a_base_model_folder_without_config_is_one_line(task_csv, tmp_path, capsys):
    (tmp_path / "model").mkdir()
    code, _, err = run(capsys, "tune", "--task", task_csv, "--out", tmp_path / "o", "--base-model", tmp_path / "model")
    one_line_error(code, err, "neither a local model folder nor a Hub model id")


def test_transfer_matrix_bad_seeds_is_one_line(capsys):
    code, _, err = run(capsys, "transfer-matrix", "--tasks", "classification16", "--seeds", "x")
    one_line_error(code, err, "--seeds", "0,1,2")
    assert build_parser().parse_args(["transfer-matrix", "--seeds", "0, 2"]).seeds == [0, 2]


def test_space_without_gradio_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed: find_spec answers None
    code, _, err = run(capsys, "space", "--registry", "default")
    one_line_error(code, err, 'pip install "taskemb-hub[space]"')


# ---- 2. a dry run needs no network ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapter(tiny_bert, task_csv, tmp_path_factory):
    return tune(str(task_csv), _cfg(tiny_bert), tmp_path_factory.mktemp("run"), progress=False)[-1].path


@pytest.mark.parametrize("as_json", [False, True])
def test_publish_dry_run_works_with_an_unreachable_hub(adapter, capsys, monkeypatch, as_json):
    from huggingface_hub.utils import get_session

    calls = []
    monkeypatch.setattr(type(get_session()), "request", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(
        OSError("network used")))
    code, out, err = run(capsys, "publish", adapter, "--repo-id", "me/x", "--dry-run", "--base-model-id", BASE,
                         "--endpoint", "http://127.0.0.1:9", *(["--json"] if as_json else []))
    assert code == 0, err
    assert not calls
    if as_json:
        payload = json.loads(out)
        assert "taskemb.safetensors" in payload["files"] and "taskemb-hub" in payload["card"]
        assert "not validated by the Hub" in payload["note"]
    else:
        assert "would upload to me/x" in out and "taskemb.safetensors" in out and "taskemb-hub" in out
        assert "not validated by the Hub" in out


# ---- 3. the packaged registry is read-only ------------------------------------------------------------------
def test_registry_add_to_default_is_refused(adapter, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "registry", "add", adapter, "--registry", "default")
    one_line_error(code, err, "'default' is the packaged registry, which is read-only", "--registry my-registry")
    assert not (tmp_path / "default").exists()


# ---- 4. another run's checkpoints are never replaced silently -----------------------------------------------
def test_tune_refuses_to_replace_another_runs_checkpoints(tiny_bert, task_csv, tmp_path, capsys):
    out = tmp_path / "run"
    first = tune(str(task_csv), _cfg(tiny_bert), out, progress=False)
    before = (out / "step-2" / "adapter_model.safetensors").read_bytes()
    capsys.readouterr()  # the first run's progress output
    code, _, err = run(capsys, "tune", "--task", task_csv, "--out", out, "--base-model", tiny_bert, "--method",
                       "bitfit", "--max-steps", 2, "--batch-size", 8, "--eval-examples", 0, "--seed", 1)
    one_line_error(code, err, "holds checkpoints of another run (step-2)", "--restart", "another --out")
    assert (out / "step-2" / "adapter_model.safetensors").read_bytes() == before
    again = tune(str(task_csv), _cfg(tiny_bert), out, progress=False)  # the same run: finished before, kept
    assert again[-1].embedding.adapter_sha256 == first[-1].embedding.adapter_sha256
    replaced = tune(str(task_csv), _cfg(tiny_bert, seed=1), out, progress=False, resume=False)  # --restart
    assert (out / "step-2" / "adapter_model.safetensors").read_bytes() != before
    assert replaced[-1].embedding.extra["seed"] == 1


# ---- 5. messages that pointed the wrong way -----------------------------------------------------------------
def test_an_unsupported_file_suffix_is_named(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    code, _, err = run(capsys, "rank", "--data", notes)
    one_line_error(code, err, "'.txt', which is not supported", ".csv", ".parquet")
    assert "network" not in err and "dataset id" not in err


@pytest.mark.parametrize("source", ["../nosuch/tasks/rotten", "./nosuch", "/nosuch/task", "~/nosuch-taskemb"])
def test_a_missing_path_is_not_called_a_hub_id(source, capsys):
    code, _, err = run(capsys, "rank", "--data", source)
    one_line_error(code, err, "does not exist. Check the path.")


def test_registry_that_is_a_file_is_named_a_file(tmp_path, capsys):
    afile = tmp_path / "my.csv"
    afile.write_text("a,b\n")
    for argv in (["registry", "list"], ["rank", "--target", "x"]):
        code, _, err = run(capsys, *argv, "--registry", afile)
        one_line_error(code, err, "is a file, not a registry folder")


def test_a_missing_local_index_is_not_a_hub_outage(capsys):
    code, _, err = run(capsys, "rank", "--target", "x", "--registry", "index:/tmp/nosuchindex-taskemb")
    one_line_error(code, err, "does not exist. Check the path")
    assert "Retry later" not in err
    code, _, err = run(capsys, "rank", "--target", "x", "--registry", "index:not a//repo")
    one_line_error(code, err, "neither an index folder nor a valid Hub repo id")
    assert "Retry later" not in err


def test_a_data_file_as_target_points_to_data(tmp_path, capsys):
    data = tmp_path / "my.csv"
    data.write_text("text,label\n")
    code, _, err = run(capsys, "rank", "--target", data)
    one_line_error(code, err, "is not a folder (for a data file, use --data)")


def test_strict_refusal_does_not_tell_to_pass_strict(tiny_bert, task_csv, adapter, tmp_path, capsys):
    from taskemb_hub.registries.local import LocalRegistry

    registry = LocalRegistry(tmp_path / "reg", create=True)
    for seed in (0, 1):  # the sources: 3 steps; the target: 2
        registry.add(tune(str(task_csv), _cfg(tiny_bert, max_steps=3, seed=seed), None, progress=False)[-1].embedding,
                     name=f"src{seed}")
    capsys.readouterr()
    code, _, err = run(capsys, "rank", "--target", adapter, "--registry", tmp_path / "reg", "--similarity", "cosine",
                       "--strict")
    one_line_error(code, err, "Recipe mismatch")
    assert "--strict" not in err
    code, out, err = run(capsys, "rank", "--target", adapter, "--registry", tmp_path / "reg", "--similarity", "cosine")
    assert code == 0 and "--strict" in out + err  # without it, the warning still names the option


# ---- 6. help with examples ----------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["registry"], ["index"], ["registry", "add"], ["registry", "list"]])
def test_help_shows_examples(argv, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "taskemb-hub " in out.split("examples:")[1]
    if argv == ["registry", "add"]:
        assert "read-only" in out and "entry's name" in out and "replace an entry" in out
    if argv == ["registry", "list"]:
        assert "packaged registry; the default" in " ".join(out.split())


# ---- the trial of issue 20 -------------------------------------------------------------------------------------
def test_quickstart_help_shows_examples_and_says_what_each_option_is(capsys):
    with pytest.raises(SystemExit):
        main(["quickstart", "--help"])
    out = capsys.readouterr().out
    assert "examples:\n  taskemb-hub quickstart\n" in out
    assert "a task of the packaged registry" in out and "how many sources to show" in out


def test_output_piped_into_a_reader_that_stops_early_ends_quietly():
    import subprocess

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone (`| head` after its lines) before the ranking is printed
    writer = subprocess.run([sys.executable, "-m", "taskemb_hub.cli", "quickstart", "--json"], stdout=write_end,
                            stderr=subprocess.PIPE, text=True, timeout=300)
    os.close(write_end)
    assert writer.returncode == 141, writer.stderr
    assert "Traceback" not in writer.stderr and "BrokenPipeError" not in writer.stderr, writer.stderr
