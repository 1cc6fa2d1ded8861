"""Tuning throughput: our Accelerate loop vs `transformers.Trainer`, same PEFT config, data and batch size.

    python benchmarks/throughput.py [--task rotten_tomatoes] [--method lora] [--steps 60]

Both run the same number of optimizer steps over the same tokenized rows with dynamic padding,
and both are timed over the training loop only (model load and tokenization excluded);
they alternate (ours, Trainer, ours, Trainer) so a noisy machine hurts both alike. Prints
examples/s of each and the ratio ours/Trainer (>= 1 means ours is not slower).
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from _common import DATA_DIR, machine, require_data, save

from taskemb_hub import TuningConfig, get_method, load_task, tune
from taskemb_hub.base_model import resolve_base_model
from taskemb_hub.tuning.features import Collator, encode_rows
from taskemb_hub.tuning.training import HEAD_NAMES, build_model


def run_ours(task, args) -> float:
    cfg = TuningConfig(method=args.method, max_steps=args.steps, batch_size=args.batch_size,
                       max_train_examples=args.train_examples, eval_examples=0, max_length=args.max_length)
    with tempfile.TemporaryDirectory() as out:
        tune(task, cfg, out, progress=False)  # run.json: loop time only (after model load and tokenization)
        return json.loads((Path(out) / "run.json").read_text())["examples_per_second"]


def run_trainer(task, args, tmp) -> float:
    from peft import get_peft_model
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    load_from, _ = resolve_base_model(None)
    tokenizer = AutoTokenizer.from_pretrained(load_from)
    model = build_model(task, None, "zeros", head_pooling=TuningConfig().head_pooling)  # the head ours uses
    peft_config = get_method(args.method).make_config("SEQ_CLS")
    peft_config.modules_to_save = [n for n in HEAD_NAMES if hasattr(model, n)]
    model = get_peft_model(model, peft_config)
    feats = encode_rows(task, task.train_rows(args.train_examples), tokenizer, args.max_length)
    targs = TrainingArguments(output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                              learning_rate=get_method(args.method).default_learning_rate, report_to=[],
                              save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
                              dataloader_num_workers=0, seed=0, warmup_steps=int(0.06 * args.steps))
    result = Trainer(model=model, args=targs, train_dataset=feats, data_collator=Collator(tokenizer)).train()
    return args.steps * args.batch_size / result.metrics["train_runtime"]  # loop time only, as ours


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--steps", type=int, default=100, help="100 × 16 > 1,000 rows: both loops see every row")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-examples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_data()
    task = load_task(DATA_DIR / args.task)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            ours.append(run_ours(task, args))
            theirs.append(run_trainer(task, args, tmp))
    best_ours, best_theirs = max(ours), max(theirs)
    print(f"{'loop':<22}{'examples/s (best of ' + str(args.repeats) + ')':>28}  all runs")
    print(f"{'taskemb-hub (ours)':<22}{best_ours:>28.1f}  {[round(x, 1) for x in ours]}")
    print(f"{'transformers.Trainer':<22}{best_theirs:>28.1f}  {[round(x, 1) for x in theirs]}")
    print(f"ratio ours/Trainer: {best_ours / best_theirs:.3f}  (training loop only, best of {args.repeats}; >= 1: not slower)")
    save("throughput", {"args": vars(args), "ours": ours, "trainer": theirs, "ratio": best_ours / best_theirs,
                        "machine": machine()})


if __name__ == "__main__":
    main()
