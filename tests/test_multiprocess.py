"""Tuning under `accelerate launch` with 2 CPU processes follows the same schedule as 1 process (same global batch)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.methods import EmbeddingOptions

SCRIPT = Path(__file__).parent / "_multiprocess_tune.py"


def _run(command, env):
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.skipif(shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists(),
                    reason="the accelerate launcher is not installed")
def test_two_processes_follow_the_one_process_schedule_and_embedding(tiny_bert, tmp_path):
    from transformers import AutoConfig

    # Without dropout, 2 processes x 8 rows and 1 process x 16 rows see the same global batches and gradients.
    base = tmp_path / "tiny-bert-no-dropout"
    shutil.copytree(tiny_bert, base)
    config = AutoConfig.from_pretrained(base)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(base)
    tiny_bert = str(base)
    # `accelerate launch --cpu --num_processes 2` starts ONE process in accelerate 1.x (its simple launcher);
    # two CPU processes need the distributed launcher with ACCELERATE_USE_CPU=1 (gloo, DistributedType.MULTI_CPU).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "ACCELERATE_USE_CPU": "1"}
    launcher = str(Path(sys.executable).parent / "accelerate")
    # 20-step schedule stopped at step 10: the learning rate must still be half-way down, not at 0.
    _run([sys.executable, str(SCRIPT), tiny_bert, str(tmp_path / "one"), "16", "20", "10"], env)
    _run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", str(SCRIPT), tiny_bert, str(tmp_path / "two"), "8", "20", "10"], env)
    one, two = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["optimizer_steps"] == two["optimizer_steps"] == 10
    assert one["final_learning_rates"][0] > 0  # (20 - 10) / (20 - 4) of the peak
    assert two["final_learning_rates"] == pytest.approx(one["final_learning_rates"], rel=1e-6)
    # The tuned weights agree to float error, and so do the embeddings themselves (per-module normalisation
    # included: BitFit's attention key biases, which get no gradient and held only float noise that normalisation
    # blew up to unit blocks, are neither tuned nor embedded; with them the two runs' embeddings were at cosine ~0.9).
    raw = EmbeddingOptions(per_module_norm=False)
    a = TaskEmbedding.from_adapter(tmp_path / "one" / "step-10", options=raw)
    b = TaskEmbedding.from_adapter(tmp_path / "two" / "step-10", options=raw)
    assert a.similarity(b) > 0.9999, a.similarity(b)
    a, b = (TaskEmbedding.from_adapter(tmp_path / d / "step-10") for d in ("one", "two"))
    assert a.similarity(b) > 0.9999, a.similarity(b)
