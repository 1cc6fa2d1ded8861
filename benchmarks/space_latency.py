"""The Space's latency and memory, measured through `gradio_client` against a server on 127.0.0.1.

    python benchmarks/space_latency.py [--sizes 1000,10000] [--lookups 200] [--adapter-lookups 50]
                                       [--similarity cosine] [--skip-upload]

- Lookups: registries of 1k and 10k synthetic entries (random vectors, each module's block of unit
  norm as taskemb-hub embeds, in the signature of a real BitFit adapter of the packaged MiniLM) are
  served by `taskemb-hub`'s app in a server process; p50/p95 of `--lookups` sequential
  `/rank_registry` calls through `gradio_client` as a visitor now gets them (random entries, top 10,
  `--similarity`; the answer is the message, the table and the three figures' data: no file is written
  or fetched) and of `--adapter-lookups` `/rank_adapter` calls (an adapter zip uploaded each time,
  embedded, ranked). After each lookup, the same client asks `/downloads` (the files of its session's
  last answer: ranking CSV, JSON and embedding zip, written by the server on request, then fetched by
  gradio_client one by one): its own p50/p95, the cost a visitor pays only when downloading. Each lookup
  is also made over plain HTTP as the page makes it (POST /gradio_api/call/rank_registry, then its
  event stream): gradio_client adds its own 50 ms polling of the event stream.
  Baseline, in the same run and the same minutes: each Space lookup is followed by the same lookup as
  a plain `AutoSourceSelector.rank` call in this process (same entry, top 10, similarity; no server, no
  figures, no files), so both see the same machine load. The 1-minute load average is sampled every
  20 lookups and recorded with each figure (min / mean / max), as the machine may be shared.
- Upload to ranking: a 1,000-row CSV of rotten_tomatoes (written to a temp file from the offline
  task suite, never kept) through `/rank_data` against the packaged registry with the real
  MiniLM, the server's first visitor (the server warms tuning's imports and model files in a
  background thread as it starts: its log line is recorded): the registry's recipe (BitFit, 100
  steps) tuned in the server, TextEmb of the texts, then ranked by the fused ranker (`auto`).
  Baseline, like for like: the same work in this process after the server is closed
  (`target_from_data` + `text_embedding` + `rank(..., ranker="auto", text_target=...)`, the Space's
  top 5 and similarity), with tuning's modules already imported here (this process tuned the adapter
  above). What the Space adds is reading and checking the upload, the queue, progress reports and
  the answer's figures.
- Peak RSS of each server process (VmHWM from /proc).

Writes results/space_latency.json (with --skip-upload, the upload figures of the previous run are kept,
marked as such). CPU-heavy: take /work/notes/cpu.lock first on a shared machine.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA_DIR, machine, peak_rss_mb, require_data, save  # noqa: E402

HERE = Path(__file__).resolve()


# ---- the server process ------------------------------------------------------------------
def serve(registry: str, port: int) -> None:
    """Run the Space on 127.0.0.1:port (the child process of a measurement)."""
    from taskemb_hub.space import launch

    launch(registry, host="127.0.0.1", port=port, quiet=True)


class Server:
    """The Space in a child process; `peak_rss_mb()` reads its VmHWM."""

    def __init__(self, registry: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, str(HERE), "--serve", registry, "--port", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 600:
                raise RuntimeError("the server did not start in 600 s")
            time.sleep(0.5)
        self.start_s = time.perf_counter() - started

    def log_lines(self, text: str) -> list[str]:
        """The server log's lines that contain `text` (e.g. its warm-up report)."""
        self.log.flush()
        return [line.strip() for line in Path(self.log.name).read_text(errors="replace").splitlines() if text in line]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()
        os.unlink(self.log.name)


# ---- helpers -------------------------------------------------------------------------------
def percentiles(times: list[float]) -> dict:
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {"n": len(times), "p50_ms": round(1000 * statistics.median(ordered), 1), "p95_ms": round(1000 * pick(0.95), 1),
            "max_ms": round(1000 * ordered[-1], 1)}


def bitfit_adapter(folder: Path) -> Path:
    """A real BitFit adapter of the packaged MiniLM (2 steps on toy rows): its signature shapes the registry."""
    from taskemb_hub import TuningConfig, tune
    from taskemb_hub.data import CLASSIFICATION, TaskData

    rng = random.Random(0)
    rows = [{"text": f"the film was {rng.choice(['good', 'bad'])}", "label": rng.randint(0, 1)} for _ in range(32)]
    task = TaskData(name="bench-adapter", task_type=CLASSIFICATION, labels=["neg", "pos"], splits={"train": rows})
    return tune(task, TuningConfig(max_steps=2, eval_examples=0), folder, progress=False)[-1].path


def unit_modules(vector, signature: dict):
    """`vector` with each module's block scaled to norm 1, as taskemb-hub embeds (an index refuses other norms)."""
    import math

    import torch

    sizes = [math.prod(shape) for shape in signature["modules"].values()]
    if sum(sizes) != vector.numel():
        return vector / vector.norm() * math.sqrt(len(sizes))
    return torch.cat([block / block.norm() for block in vector.split(sizes)])


def synthetic_snapshot(n: int, template, folder: Path) -> Path:
    """A saved selector of n random vectors in `template`'s signature (loads as `--registry <folder>`)."""
    import torch

    from taskemb_hub import TaskEmbedding
    from taskemb_hub.registries import RegistryEntry
    from taskemb_hub.ranking.selector import AutoSourceSelector

    generator = torch.Generator().manual_seed(n)
    recipe = template.extra.get("recipe")
    entries = [RegistryEntry(f"synthetic-{i:05d}", TaskEmbedding(
        vector=unit_modules(torch.randn(template.dim, generator=generator), template.signature),
        task=f"synthetic-{i:05d}", base_model=template.base_model,
        method=template.method, signature=template.signature, step=100, train_size=1000,
        metrics={"accuracy": 0.5 + 0.5 * (i % 100) / 100}, extra={"recipe": recipe}), "memory") for i in range(n)]
    AutoSourceSelector(entries).save_pretrained(folder)
    return folder


def rotten_tomatoes_csv(path: Path, rows: int = 1000) -> Path:
    with gzip.open(DATA_DIR / "rotten_tomatoes" / "train.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for _, line in zip(range(rows), handle)]
    labels = json.loads((DATA_DIR / "rotten_tomatoes" / "task.json").read_text())["labels"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "verdict"])
        writer.writerows([r["text"], labels[r["label"]]] for r in records)
    return path


# ---- measurements ----------------------------------------------------------------------------
GOAL_P95_MS = 300.0  # issue 23: a registry lookup at 10k entries, p95, on 2 idle cores


class LoadSampler:
    """The 1-minute load average, sampled while a measurement runs."""

    def __init__(self):
        self.samples = [os.getloadavg()[0]]

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict:
        return {"min": round(min(self.samples), 2), "mean": round(statistics.fmean(self.samples), 2),
                "max": round(max(self.samples), 2), "samples": len(self.samples)}


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _page_call(http, data: list) -> str:
    """One `/rank_registry` call as the page makes it: POST, then read its event stream to the end."""
    event = http.post("gradio_api/call/rank_registry", json={"data": data}).json()["event_id"]
    text = http.get(f"gradio_api/call/rank_registry/{event}").text
    assert "event: complete" in text and "⚠️" not in text[:2000], text[:500]
    return text


def measure_lookups(n: int, lookups: int, adapter_lookups: int, similarity: str, template, adapter_zip: Path,
                    work: Path) -> dict:
    from gradio_client import Client, handle_file

    from taskemb_hub.ranking.selector import AutoSourceSelector

    snapshot = synthetic_snapshot(n, template, work / f"registry-{n}")
    names = [f"synthetic-{i:05d}" for i in random.Random(1).sample(range(n), min(lookups, n))]
    names = (names * (lookups // len(names) + 1))[:lookups]
    selector = AutoSourceSelector.from_local(snapshot)  # the baseline's registry, the server's own copy aside
    selector.rank(names[-1], top_k=10, similarity=similarity)
    server = Server(str(snapshot))
    try:
        client = Client(server.url, verbose=False, download_files=str(work / "downloads"))
        registry = lambda name: client.predict(name, "any", "any", 10, similarity, api_name="/rank_registry")  # noqa: E731
        downloads = lambda: client.predict(api_name="/downloads")  # noqa: E731 - the session's last answer
        adapter = lambda: client.predict("", handle_file(str(adapter_zip)), "any", "any", 10, similarity,  # noqa: E731
                                         api_name="/rank_adapter")
        import httpx

        http = httpx.Client(base_url=server.url, timeout=120)
        page = lambda name: _page_call(http, [name, "any", "any", 10, similarity, "auto", False])  # noqa: E731
        first_registry, _ = timed(lambda: registry(names[0]))
        first_adapter, first = timed(adapter)
        assert not first[0].startswith("⚠️"), first[0]
        load = LoadSampler()
        registry_times, download_times, page_times, baseline, adapter_times = [], [], [], [], []
        for i, name in enumerate(names):
            took, answer = timed(lambda: registry(name))
            assert len(answer) == 5 and len(answer[1]["data"]) == 10 and answer[2]["mark"] == "bar", answer[0]
            registry_times.append(took)
            took, files = timed(downloads)
            assert [Path(f).name for f in files] == [f"ranking-{name}.csv", f"ranking-{name}.json",
                                                     f"taskemb-{name}.zip"], files
            download_times.append(took)
            page_times.append(timed(lambda: page(name))[0])
            baseline.append(timed(lambda: selector.rank(name, top_k=10, similarity=similarity))[0])
            if i % 20 == 19:
                load.sample()
        registry_load = load.summary()
        load = LoadSampler()
        for i in range(adapter_lookups):
            took, answer = timed(adapter)
            assert len(answer[1]["data"]) == 10, answer[0]
            adapter_times.append(took)
            if i % 20 == 19:
                load.sample()
        rss = server.peak_rss_mb()
        start_s = server.start_s
    finally:
        server.close()
    del selector
    shutil.rmtree(snapshot, ignore_errors=True)
    return {"entries": n, "similarity": similarity, "server_start_s": round(start_s, 1),
            "first_registry_lookup_s": round(first_registry, 2), "first_adapter_lookup_s": round(first_adapter, 2),
            "registry_lookup": percentiles(registry_times), "downloads_call": percentiles(download_times),
            "registry_lookup_http": percentiles(page_times),
            "baseline_selector_rank": percentiles(baseline),
            "load_1min_during_registry_lookups": registry_load,
            "adapter_lookup": percentiles(adapter_times) if adapter_times else None,
            "load_1min_during_adapter_lookups": load.summary(), "server_peak_rss_mb": round(rss)}


def measure_upload(work: Path) -> dict:
    from gradio_client import Client, handle_file

    from taskemb_hub.baselines import text_embedding
    from taskemb_hub.data import load_task
    from taskemb_hub.ranking.selector import DEFAULT_SIMILARITY, AutoSourceSelector
    from taskemb_hub.space._handlers import _target_from_data

    path = rotten_tomatoes_csv(work / "rotten_tomatoes_1000.csv")
    server = Server("default")
    try:
        client = Client(server.url, verbose=False, download_files=str(work / "downloads"))
        started = time.perf_counter()
        answer = client.predict(data_file=handle_file(str(path)), text_column="review", label_column="verdict",
                                top_k=5, similarity=DEFAULT_SIMILARITY, ranker="auto", api_name="/rank_data")
        upload_s = time.perf_counter() - started
        assert not answer[0].startswith("⚠️"), answer[0]
        rss, warmup = server.peak_rss_mb(), server.log_lines("tuning warm-up")
    finally:
        server.close()
    # Baseline, like for like: what the Space's rank_data does after reading the upload, in this process.
    selector = AutoSourceSelector.from_default()  # the server loaded its registry as it started: not timed there
    started = time.perf_counter()
    task = load_task(path, text_column="review", label_column="verdict")
    target = _target_from_data()(task, selector, progress=False)
    tuned_s = time.perf_counter() - started
    text_target = text_embedding(task)
    baseline_ranking = selector.rank(target, top_k=5, similarity=DEFAULT_SIMILARITY, ranker="auto",
                                     text_target=text_target)
    baseline_s = time.perf_counter() - started
    return {"rows": 1000, "upload_to_ranking_s": round(upload_s, 1), "top5": [r[1] for r in answer[1]["data"]],
            "message": answer[0], "server_peak_rss_mb": round(rss), "server_warmup": warmup,
            "baseline_in_process_s": round(baseline_s, 1), "baseline_target_from_data_s": round(tuned_s, 1),
            "baseline": "target_from_data + text_embedding + rank(ranker='auto', text_target=...), in process",
            "baseline_ranker": baseline_ranking.ranker, "baseline_top5": baseline_ranking.names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--adapter-lookups", type=int, default=50)
    parser.add_argument("--similarity", default="cosine")
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.port)
    if not args.skip_upload:
        require_data()
    from taskemb_hub.embedding import TaskEmbedding

    results = {"machine": {**machine(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
               "lookups": [], "upload": None if not args.skip_upload else _previous_upload()}
    with tempfile.TemporaryDirectory(prefix="space-latency-") as tmp:
        work = Path(tmp)
        adapter = bitfit_adapter(work / "adapter")
        template = TaskEmbedding.load(adapter)
        adapter_zip = work / "adapter.zip"
        with zipfile.ZipFile(adapter_zip, "w") as archive:  # a plain peft adapter: config + safetensors
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                archive.write(adapter / name, f"adapter/{name}")
        print(f"{'entries':>8} {'endpoint':<15} {'p50 ms':>7} {'p95 ms':>7} {'first s':>7}   {'in-process rank p50/p95':>24}"
              f"   {'load 1-min min/mean/max':>24}   server RSS")
        for n in [int(s) for s in args.sizes.split(",") if s]:
            row = measure_lookups(n, args.lookups, args.adapter_lookups, args.similarity, template, adapter_zip, work)
            results["lookups"].append(row)
            save("space_latency", results)  # as results come: a cut-off run keeps what it measured
            _print_row(row)
        _print_goal(results["lookups"])
        if not args.skip_upload:
            up = measure_upload(work)
            results["upload"] = up
            print(f"1,000-row CSV -> ranking through /rank_data: {up['upload_to_ranking_s']} s (in-process baseline, "
                  f"the same tuning + TextEmb + fused ranking: {up['baseline_in_process_s']} s); server peak RSS "
                  f"{up['server_peak_rss_mb']} MB; top 5 {up['top5']} (baseline {up['baseline_top5']})")
    results["benchmark_peak_rss_mb"] = round(peak_rss_mb())
    print(f"saved {save('space_latency', results)}")


def _load_text(load: dict) -> str:
    return f"{load['min']:.1f} / {load['mean']:.1f} / {load['max']:.1f}"


def _print_row(row: dict) -> None:
    reg, base, n = row["registry_lookup"], row["baseline_selector_rank"], row["entries"]
    print(f"{n:>8} {'/rank_registry':<15} {reg['p50_ms']:>7} {reg['p95_ms']:>7} {row['first_registry_lookup_s']:>7}   "
          f"{str(base['p50_ms']) + ' / ' + str(base['p95_ms']) + ' ms':>24}   "
          f"{_load_text(row['load_1min_during_registry_lookups']):>24}   {row['server_peak_rss_mb']} MB")
    for label, key in (("  /downloads", "downloads_call"), ("  page (HTTP)", "registry_lookup_http")):
        print(f"{n:>8} {label:<15} {row[key]['p50_ms']:>7} {row[key]['p95_ms']:>7} {'':>7}   {'(same minutes)':>24}")
    if row["adapter_lookup"]:
        ad = row["adapter_lookup"]
        print(f"{n:>8} {'/rank_adapter':<15} {ad['p50_ms']:>7} {ad['p95_ms']:>7} {row['first_adapter_lookup_s']:>7}   "
              f"{'':>24}   {_load_text(row['load_1min_during_adapter_lookups']):>24}")


def _print_goal(rows: list[dict]) -> None:
    largest = max(rows, key=lambda r: r["entries"], default=None)
    if largest is None or largest["entries"] < 10_000:
        return
    p95, load = largest["registry_lookup"]["p95_ms"], largest["load_1min_during_registry_lookups"]
    verdict = "met" if p95 <= GOAL_P95_MS else "not met"
    print(f"goal (p95 <= {GOAL_P95_MS:.0f} ms at 10k entries on 2 idle cores): {verdict} at p95 {p95} ms, measured at "
          f"a 1-minute load of {_load_text(load)} (min / mean / max) on {os.cpu_count()} cores")


def _previous_upload() -> dict | None:
    """The upload figures of the previous results file (not re-measured with --skip-upload), marked as such."""
    from _common import RESULTS

    try:
        previous = json.loads((RESULTS / "space_latency.json").read_text()).get("upload")
    except (OSError, ValueError):
        return None
    if previous and "note" not in previous:
        previous = {**previous, "note": "not re-measured by the run above (--skip-upload): from an earlier run"}
    return previous


if __name__ == "__main__":
    main()
