"""Run under `accelerate launch`: tune a tiny BERT on a toy task and write run.json + the embedding (for test_multiprocess)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import _sentiment_rows  # noqa: E402
from taskemb_hub import TuningConfig, tune  # noqa: E402
from taskemb_hub.data import CLASSIFICATION, TaskData  # noqa: E402

base_model, out, batch_size, max_steps, stop_step = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
task = TaskData(name="toy-sentiment", task_type=CLASSIFICATION, labels=["neg", "pos"],
                splits={"train": _sentiment_rows(256, 0), "validation": _sentiment_rows(16, 1)})
tune(task, TuningConfig(method="bitfit", base_model=base_model, max_steps=max_steps, batch_size=batch_size,
                        stop_step=stop_step, eval_examples=0, warmup_ratio=0.2), out, progress=False)
