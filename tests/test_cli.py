"""The `taskemb-hub` command line: tune -> embed -> registry add -> rank, with --json for scripts."""

import json

import pytest

from taskemb_hub.cli import main
from taskemb_hub.default_registry import DEFAULT_METHOD, default_registry_path


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def task_file(tmp_path):
    rows = [{"review": f"the movie was very {w}", "stars": int(w in ('good', 'great'))}
            for w in ["good", "bad", "great", "awful"] * 8]
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_tune_embed_add_rank_round_trip(capsys, tiny_bert, task_file, tmp_path):
    code, out, _ = run(capsys, "tune", "--task", str(task_file), "--text-column", "review", "--label-column", "stars",
                       "--base-model", tiny_bert, "--save-steps", "2,4", "--eval-examples", "8", "--out",
                       str(tmp_path / "run"), "--json")
    assert code == 0
    steps = json.loads(out)
    assert [s["step"] for s in steps] == [2, 4] and "accuracy" in steps[0]["metrics"]

    (tmp_path / "run" / "step-2" / "taskemb.safetensors").unlink()
    code, out, _ = run(capsys, "embed", str(tmp_path / "run" / "step-2"), "--json")
    assert code == 0 and json.loads(out)["method"] == DEFAULT_METHOD  # tune without --method
    assert (tmp_path / "run" / "step-2" / "taskemb.safetensors").is_file()

    for step in (2, 4):
        assert run(capsys, "registry", "add", str(tmp_path / "run" / f"step-{step}"), "--registry",
                   str(tmp_path / "reg"), "--name", f"reviews-{step}")[0] == 0
    code, out, _ = run(capsys, "rank", "--target", str(tmp_path / "run" / "step-4"), "--registry", str(tmp_path / "reg"),
                       "--json")
    ranking = json.loads(out)
    assert code == 0 and {r["source"] for r in ranking["ranking"]} == {"reviews-2", "reviews-4"}
    assert ranking["ranking"][0]["source"] == "reviews-4" and ranking["ranking"][0]["score"] == pytest.approx(1.0)

    code, out, _ = run(capsys, "rank", "--data", str(task_file), "--text-column", "review", "--label-column", "stars",
                       "--base-model", tiny_bert, "--registry", str(tmp_path / "reg"), "--json")
    assert code == 0 and len(json.loads(out)["ranking"]) == 2


def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path):
    code, _, err = run(capsys, "embed", str(tmp_path))
    assert code == 2 and err.startswith("error:") and "adapter_config.json" in err


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "examples:" in capsys.readouterr().out


@pytest.mark.skipif(not (default_registry_path() / "rotten_tomatoes").is_dir(), reason="packaged registry not built")
def test_quickstart_ranks_the_packaged_registry_offline(capsys):
    code, out, _ = run(capsys, "quickstart", "--json")
    data = json.loads(out)
    assert code == 0 and data["target"] == "rotten_tomatoes" and len(data["ranking"]) == 5
    assert "rotten_tomatoes" not in [r["task"] for r in data["ranking"]]
    code, out, _ = run(capsys, "quickstart")
    assert "taskemb-hub rank --data" in out


@pytest.mark.skipif(not (default_registry_path() / "rotten_tomatoes").is_dir(), reason="packaged registry not built")
def test_packaged_registry_is_one_recipe_of_the_default_method():
    from taskemb_hub.registries.local import LocalRegistry

    entries = LocalRegistry(default_registry_path()).entries()
    assert len(entries) == 16
    assert {e.embedding.method for e in entries} == {DEFAULT_METHOD}
    assert len({e.embedding.signature_hash for e in entries}) == 1  # every pair is comparable
    assert {e.embedding.step for e in entries} == {100}


def test_embed_raw_prompt_gives_the_spot_style_vector_in_its_own_space(capsys, tiny_bert, task_file, tmp_path):
    run(capsys, "tune", "--task", str(task_file), "--text-column", "review", "--label-column", "stars", "--method",
        "prompt", "--base-model", tiny_bert, "--max-steps", "2", "--eval-examples", "0", "--out", str(tmp_path / "run"))
    step = tmp_path / "run" / "step-2"
    code, out, _ = run(capsys, "embed", str(step), "--no-save", "--json")
    relative = json.loads(out)
    code_raw, out, _ = run(capsys, "embed", str(step), "--raw-prompt", "--no-save", "--json")
    raw = json.loads(out)
    assert code == code_raw == 0
    assert raw["signature"].get("raw_tokens") is True and "raw_tokens" not in relative["signature"]
    assert raw["signature_hash"] != relative["signature_hash"]
