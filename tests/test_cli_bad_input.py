"""Every bad input on the command line ends in one line naming the problem and the fix, exit code 2."""

import json

import pytest
import torch

from taskemb_hub import TaskEmbedding
from taskemb_hub.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, f"not one line: {err!r}"
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


BAD_FILES = {
    "empty.csv": (b"", ["is empty", "Add rows"]),
    "header.csv": (b"text,label\n", ["has no rows", "Add rows"]),
    "latin.csv": ("text,label\ncaf\xe9,1\nbon,0\n".encode("latin-1"), ["not UTF-8", "iconv"]),
    "one-label.csv": (("text,label\n" + "".join(f"row {i},1\n" for i in range(40))).encode(),
                      ["every training row has label '1'", "at least two labels"]),
    "three-rows.csv": (b"text,label\na,0\nb,1\nc,0\n", ["3 training rows", "at least 20"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_rank_data_refuses_a_file_that_cannot_carry_a_task(capsys, tmp_path, name):
    content, fragments = BAD_FILES[name]
    (tmp_path / name).write_bytes(content)
    code, out, err = run(capsys, "rank", "--data", tmp_path / name, "--registry", "default")
    assert out == ""
    one_line_error(code, err, *fragments)


def test_rank_without_target_or_data(capsys):
    one_line_error(*run(capsys, "rank", "--registry", "default")[::2], "--target", "--data")


def test_rank_a_target_whose_metadata_has_no_signature(capsys, tmp_path):
    folder = TaskEmbedding(vector=torch.ones(3), task="t", base_model="tiny", method="bitfit",
                           signature={"method": "bitfit"}).save(tmp_path / "target")
    meta = json.loads((folder / "taskemb.json").read_text())
    del meta["signature"]
    (folder / "taskemb.json").write_text(json.dumps(meta))
    one_line_error(*run(capsys, "rank", "--target", folder, "--registry", "default")[::2],
                   "no 'signature'", "taskemb-hub embed")


def test_registry_add_refuses_a_name_nested_in_an_entry(capsys, tmp_path):
    folder = TaskEmbedding(vector=torch.ones(3), task="t", base_model="tiny", method="bitfit",
                           signature={"method": "bitfit"}).save(tmp_path / "emb")
    assert run(capsys, "registry", "add", folder, "--registry", tmp_path / "reg", "--name", "org/outer")[0] == 0
    one_line_error(*run(capsys, "registry", "add", folder, "--registry", tmp_path / "reg", "--name",
                        "org/outer/inner")[::2], "inside entry 'org/outer'")


@pytest.mark.parametrize("repo_id", ["not a repo id", "owner/na..me", "/leading"])
def test_publish_refuses_a_malformed_repo_id(capsys, tmp_path, repo_id):
    folder = TaskEmbedding(vector=torch.ones(3), task="t", base_model="tiny", method="bitfit",
                           signature={"method": "bitfit"}).save(tmp_path / "emb")
    one_line_error(*run(capsys, "publish", folder, "--repo-id", repo_id)[::2], repr(repo_id))


# ---- numbers no run can use: one line and exit 2, from argparse's `type=` and from TuningConfig (issue 21) ----
@pytest.mark.parametrize("argv, fragments", [
    (["tune", "--save-steps", "abc"], ["--save-steps must be a comma list", "--save-steps 50,100,200"]),
    (["tune", "--save-steps", "50,-1"], ["--save-steps must be a comma list"]),
    (["tune", "--max-train-examples", "-1"], ["--max-train-examples must be a positive integer", "got '-1'"]),
    (["tune", "--batch-size", "0"], ["--batch-size must be a positive integer", "--batch-size 16"]),
    (["tune", "--batch-size", "abc"], ["--batch-size must be a positive integer"]),
    (["tune", "--max-steps", "0"], ["--max-steps must be a positive integer"]),
    (["tune", "--learning-rate", "-1"], ["--learning-rate must be a positive number"]),
    (["tune", "--eval-examples", "-5"], ["--eval-examples must be an integer >= 0"]),
    (["rank", "--top-k", "0"], ["--top-k must be a positive integer", "--top-k 5"]),
    (["rank", "--top-k", "-3"], ["--top-k must be a positive integer"]),
    (["quickstart", "--top-k", "0"], ["--top-k must be a positive integer"]),
], ids=lambda a: " ".join(a) if isinstance(a, list) and a and a[0] in ("tune", "rank", "quickstart") else "")
def test_a_number_no_run_can_use_is_one_line_and_exit_2(capsys, tmp_path, argv, fragments):
    if argv[0] == "tune":
        argv = argv + ["--task", tmp_path / "task.csv", "--out", tmp_path / "out"]
    elif argv[0] == "rank":
        argv = argv + ["--registry", "default"]
    code, out, err = run(capsys, *argv)
    assert out == "" and not (tmp_path / "out").exists()
    one_line_error(code, err, *fragments)


@pytest.mark.parametrize("field, value, says", [
    ("learning_rate", -1, "learning_rate must be a positive number"),
    ("learning_rate", float("nan"), "learning_rate must be a positive number"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("max_steps", 0, "max_steps must be an integer >= 1"),
    ("max_train_examples", -1, "max_train_examples must be an integer >= 1 or None"),
    ("head_learning_rate", 0, "head_learning_rate must be a positive number"),
    ("warmup_ratio", 1.5, "warmup_ratio must be in [0, 1)"),
    ("gradient_accumulation_steps", 0, "gradient_accumulation_steps must be an integer >= 1"),
    ("stop_step", 500, "stop_step 500 is past max_steps=100"),
])
def test_tuning_config_refuses_numbers_no_run_can_use(field, value, says):
    from taskemb_hub import TaskEmbHubError, TuningConfig

    with pytest.raises(TaskEmbHubError) as err:
        TuningConfig(**{field: value})
    assert says in str(err.value) and "\n" not in str(err.value)


def test_tune_max_steps_0_no_longer_exits_0_with_nothing(capsys, tmp_path):
    rows = "".join(f"row {i} good,{i % 2}\n" for i in range(40))
    (tmp_path / "task.csv").write_text("text,label\n" + rows)
    code, _, err = run(capsys, "tune", "--task", tmp_path / "task.csv", "--out", tmp_path / "out", "--max-steps", "0")
    one_line_error(code, err, "--max-steps")
    assert not (tmp_path / "out").exists()
