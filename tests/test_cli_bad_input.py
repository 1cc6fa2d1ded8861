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
