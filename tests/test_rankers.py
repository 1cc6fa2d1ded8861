"""Which signal ranks: the PEFT embedding, TextEmb, or their fusion (`taskemb_hub.ranking.rankers`), and how users pick it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from taskemb_hub import AutoSourceSelector, TaskEmbedding
from taskemb_hub.default_registry import default_registry_path
from taskemb_hub.errors import TaskEmbHubError
from taskemb_hub.ranking.rankers import FUSION_TEXT_WEIGHT


@pytest.fixture(scope="module")
def packaged():
    return AutoSourceSelector.from_default()


def test_a_registry_task_is_ranked_by_the_fusion_of_both_signals_by_default(packaged):
    ranking = packaged.rank("fever")
    assert ranking.ranker == "fusion" and ranking.similarity == "pcr-1" and "TextEmb" in ranking.why
    assert "fever" not in ranking.names and len(ranking) == 15
    peft = {r["source"]: r["score"] for r in packaged.rank("fever", ranker="peft").rows}
    text = {r["source"]: r["score"] for r in packaged.rank("fever", ranker="textemb").rows}
    names = sorted(peft)

    def z(d):
        x = np.array([d[n] for n in names])
        return (x - x.mean()) / x.std()

    expected = dict(zip(names, z(peft) + FUSION_TEXT_WEIGHT * z(text)))
    assert {r["source"]: r["score"] for r in ranking.rows} == pytest.approx(expected, abs=1e-5)
    assert ranking.names == sorted(expected, key=lambda n: -expected[n])


def test_an_adapter_alone_has_no_texts_so_auto_ranks_by_the_peft_embedding(packaged):
    adapter = TaskEmbedding.load(default_registry_path() / "fever")
    ranking = packaged.rank(adapter, exclude={"fever"})
    assert ranking.ranker == "peft" and ranking.similarity == "pcr-1"
    assert ranking.why.startswith("auto: the target's texts are not known, so the PEFT embedding ranks alone")
    assert ranking.rows == packaged.rank("fever", ranker="peft").rows
    with pytest.raises(TaskEmbHubError, match="needs the target's texts.*rank --data.*or use ranker 'peft'"):
        packaged.rank(adapter, ranker="fusion")


def test_the_target_texts_given_as_a_vector_are_fused(packaged):
    text = TaskEmbedding.load(default_registry_path().parent / "textemb" / "fever")
    adapter = TaskEmbedding.load(default_registry_path() / "fever")
    ranking = packaged.rank(adapter, exclude={"fever"}, text_target=text)
    assert ranking.ranker == "fusion" and ranking.rows == packaged.rank("fever").rows


def test_a_registry_without_textemb_vectors_says_which_ranker_works(packaged):
    plain = AutoSourceSelector.from_local(default_registry_path())
    assert plain.text_selector is None and plain.rank("fever").ranker == "peft"
    with pytest.raises(TaskEmbHubError, match="needs a registry with TextEmb vectors.*--ranker peft"):
        plain.rank("fever", ranker="textemb")
    with pytest.raises(TaskEmbHubError, match="Unknown ranker 'best'.*auto, peft, textemb, fusion"):
        plain.rank("fever", ranker="best")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "taskemb_hub.cli", *args], capture_output=True, text=True)


def test_rank_ranker_from_the_command_line():
    out = _cli("rank", "--target", "fever", "--ranker", "textemb", "--top-k", "3", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["ranker"] == "textemb" and len(payload["ranking"]) == 3 and payload["why"]
    bad = _cli("rank", "--target", str(default_registry_path() / "fever"), "--ranker", "fusion")
    assert bad.returncode == 2 and "needs the target's texts" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_textemb_rows_carry_the_registry_entrys_metric_and_size(packaged):
    ranking = packaged.rank("fever", ranker="textemb", similarity="cosine")
    peft = {r["source"]: r for r in packaged.rank("fever", ranker="peft").rows}
    assert all(r["metric"] == peft[r["source"]]["metric"] and r["train_size"] == peft[r["source"]]["train_size"]
               for r in ranking.rows)
    assert any("applies to the PEFT embedding" in w for w in ranking.warnings)


def test_bad_choices_and_conflicting_targets_are_one_line_exit_2(tmp_path):
    for args in (("rank", "--target", "fever", "--ranker", "best"),
                 ("rank", "--target", "fever", "--data", str(tmp_path / "x.csv"))):
        out = _cli(*args)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "invalid choice: 'best'" in _cli("rank", "--target", "fever", "--ranker", "best").stderr


def test_a_saved_selector_keeps_its_textemb_side_and_ranks_as_the_live_one(packaged, tmp_path):
    packaged.save_pretrained(tmp_path / "snap")
    again = AutoSourceSelector.from_pretrained(tmp_path / "snap")
    assert again.text_selector is not None
    assert again.rank("fever").rows == packaged.rank("fever").rows and again.rank("fever").ranker == "fusion"
