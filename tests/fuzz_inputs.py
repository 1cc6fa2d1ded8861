"""Hostile inputs, generated: data uploads, adapter zips and folders, Hub repos and index folders.

Run by `tests/test_fuzz_inputs.py` in a fresh process (so that its peak memory is its own):
`python tests/fuzz_inputs.py OUT.json`. Every case is malformed by construction; each is fed
to the entry point a visitor or a publisher reaches (the Space's handlers, `LocalRegistry.add`,
`AutoSourceSelector.from_hub` / `from_index`) and its outcome recorded:

- `refused`: a `TaskEmbHubError` (or a skipped entry with its reason), with the message;
- `accepted`: the input went through (a hole: malformed input read as a task or a source);
- `crash`: any other exception (a traceback a user would see).

The file also records the process's peak memory and whether what was stored before (a local
registry, an index folder, a Hub repo) is byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import resource
import shutil
import struct
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

BASE = "test/tiny-bert"
REACHED_TUNING = "REACHED_TUNING"


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not `getrusage`'s ru_maxrss: Linux keeps that across execve, so a
    process started by a large one (pytest, late in a run) would report its parent's peak; VmHWM is this
    address space's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- set-up: a tiny base model, two tuned tasks, a registry, an index -----------------------------
def _tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from conftest import WORDS

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(WORDS) + list("abcdefghijklmnopqrstuvwxyz.,?!0123456789")
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    return folder


def _setup(root: Path) -> dict:
    from conftest import _sentiment_rows
    from taskemb_hub import TuningConfig, tune
    from taskemb_hub.data import CLASSIFICATION, TaskData
    from taskemb_hub.registries.index import write_index
    from taskemb_hub.registries.local import LocalRegistry

    bert = _tiny_bert(root / "tiny-bert")
    registry = LocalRegistry(root / "registry", create=True)
    checkpoints = {}
    for name, seed in (("toy-a", 0), ("toy-b", 1), ("toy-c", 2)):
        task = TaskData(name=name, task_type=CLASSIFICATION, labels=["neg", "pos"],
                        splits={"train": _sentiment_rows(40, seed), "validation": _sentiment_rows(8, seed + 10)})
        cfg = TuningConfig(base_model=str(bert), max_steps=3, eval_examples=0, seed=seed)
        checkpoints[name] = tune(task, cfg, root / "runs" / name, progress=False)[-1].path
        registry.add(checkpoints[name], name=name)
    write_index(registry.entries(), root / "index")
    return {"bert": bert, "registry": registry.path, "index": root / "index", "adapter": checkpoints["toy-a"]}


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (lock files aside): what must survive every bad input."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


# ---- malformed safetensors files --------------------------------------------------------------
def _safetensors(header: dict | bytes, body: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body


def bad_safetensors(good: bytes) -> Iterator[tuple[str, bytes]]:
    """Corruptions of a valid safetensors file (header length, JSON, offsets, dtypes, values)."""
    (n,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + n])
    body = good[8 + n:]
    name = next(k for k in header if k != "__metadata__")
    info = header[name]
    yield "empty file", b""
    yield "seven bytes", good[:7]
    yield "header length 2**63", struct.pack("<Q", 2 ** 63) + good[8:]
    yield "header length past the end", struct.pack("<Q", len(good) * 4) + good[8:]
    yield "header length zero", struct.pack("<Q", 0) + good[8:]
    yield "header not JSON", _safetensors(b"{not json" + b" " * 10, body)
    yield "header a JSON list", _safetensors(b"[1, 2, 3]", body)
    yield "header not UTF-8", _safetensors(b'{"\xff\xfe": 1}', body)
    yield "truncated body", good[: 8 + n + max(1, len(body) // 2)]
    for label, change in (
        ("offsets past the end", {"data_offsets": [0, len(body) * 8]}),
        ("negative offsets", {"data_offsets": [-8, 8]}),
        ("reversed offsets", {"data_offsets": [8, 0]}),
        ("unknown dtype", {"dtype": "F99"}),
        ("shape disagrees with bytes", {"shape": [info["shape"][0] * 1000] + info["shape"][1:]}),
        ("negative shape", {"shape": [-1]}),
        ("shape of strings", {"shape": ["a"]}),
        ("dtype a number", {"dtype": 7}),
        ("huge shape", {"shape": [2 ** 40, 2 ** 40]}),
    ):
        changed = dict(header)
        changed[name] = {**info, **change}
        yield label, _safetensors(changed, body)
    yield "no tensors", _safetensors({"__metadata__": header.get("__metadata__") or {}}, b"")
    overlap = dict(header)
    overlap["twin"] = dict(info)
    yield "two tensors on the same bytes", _safetensors(overlap, body)
    metadata = dict(header)
    metadata["__metadata__"] = {"k": ["not", "a", "string"]}
    yield "metadata not strings", _safetensors(metadata, body)
    yield "random bytes", random.Random(len(good)).randbytes(len(good))


def _with_values(good: bytes, value: float) -> bytes:
    """The same file, every float32 value replaced (NaN, inf, zero)."""
    (n,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + n])
    body = bytearray(good[8 + n:])
    for key, info in header.items():
        if key == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        body[start:end] = struct.pack("<f", value) * ((end - start) // 4)
    return good[:8 + n] + bytes(body)


# ---- family 1: data files uploaded to the Space ------------------------------------------------
def bad_data_files(folder: Path) -> Iterator[tuple[str, Path]]:
    rng = random.Random(0)
    rows = [f"the movie was very {'good' if i % 2 else 'bad'},{i % 2}" for i in range(60)]

    def write(name: str, data: bytes | str) -> Path:
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    yield "empty csv", write("empty.csv", b"")
    yield "only a BOM", write("bom.csv", "\ufeff")
    yield "header only", write("header.csv", "text,label\n")
    yield "three rows", write("few.csv", "text,label\n" + "\n".join(rows[:3]))
    yield "no label column", write("nolabel.csv", "text,stars\n" + "\n".join(rows))
    yield "no text column", write("notext.csv", "review,label\n" + "\n".join(rows))
    yield "one class only", write("oneclass.csv", "text,label\n" + "\n".join(f"text {i},1" for i in range(60)))
    yield "all labels empty", write("nolabels.csv", "text,label\n" + "\n".join(f"text {i}," for i in range(60)))
    yield "all texts empty", write("notexts.csv", "text,label\n" + "\n".join(f",{i % 2}" for i in range(60)))
    yield "not UTF-8", write("latin.csv", "text,label\n".encode() + "caf\xe9,1\n".encode("latin-1") * 60)
    yield "NUL bytes", write("nul.csv", b"text,label\n" + b"a\x00b,1\n" * 60)
    yield "unterminated quote", write("quote.csv", 'text,label\n"the movie,1\n' + "\n".join(rows))
    yield "header of commas", write("commas.csv", ",,,\n" + "\n".join(rows))
    yield "5,000 columns", write("wide.csv", ",".join(f"c{i}" for i in range(5000)) + "\n" + "\n".join(rows))
    yield "over the size limit", write("huge.csv", "text,label\n" + ("x" * 900 + ",1\n") * 300)
    yield "over the row limit", write("rows.csv", "text,label\n" + "a,1\nb,0\n" * 3000)
    yield "fractional labels", write("frac.csv", "text,label\n" + "\n".join(f"t {i},{(i % 2) + 0.5 * (i == 7)}" for i in range(60)))
    yield "label words and numbers mixed", write("mixed.csv", "text,label\n" + "\n".join(
        f"t {i},{'pos' if i % 3 else 1.5}" for i in range(60)))
    yield "tsv named csv", write("tabs.csv", "text\tlabel\n" + "\n".join(r.replace(",", "\t") for r in rows))
    yield "duplicate header", write("dup.csv", "text,text,label\n" + "\n".join(f"a,b,{i % 2}" for i in range(60)))
    for i in range(12):
        data = rng.randbytes(rng.randint(64, 4096)) + b"\xff\xfe"
        yield f"random bytes #{i} as csv", write(f"random{i}.csv", data)
    yield "not JSON", write("bad.jsonl", "{not json}\n" * 60)
    yield "array of numbers", write("numbers.json", json.dumps(list(range(60))))
    yield "top-level string", write("string.json", json.dumps("text,label"))
    yield "empty array", write("empty.json", "[]")
    yield "labels as lists", write("lists.jsonl", "\n".join(json.dumps({"text": "t", "label": [1, 2]}) for _ in range(60)))
    yield "texts as objects", write("objects.jsonl", "\n".join(json.dumps({"text": {"a": 1}, "label": i % 2})
                                                              for i in range(60)))
    yield "one bad line mid-file", write("midbad.jsonl", "\n".join(
        json.dumps({"text": f"t {i}", "label": i % 2}) if i != 30 else "{oops" for i in range(60)))
    yield "nesting 100,000 deep", write("deep.json", "[" * 100_000 + "]" * 100_000)
    yield "number 1e999", write("inf.jsonl", "\n".join('{"text": "t", "label": 1e999}' for _ in range(60)))
    yield "object, not records", write("object.json", json.dumps({"text": ["a"] * 60, "label": [0, 1] * 30}))
    for i in range(6):
        yield f"random bytes #{i} as jsonl", write(f"random{i}.jsonl", rng.randbytes(rng.randint(64, 2048)) + b"\xff")
    yield from _bad_parquet(folder, write, rng)
    yield "suffix .txt", write("data.txt", "text,label\n" + "\n".join(rows))
    yield "no suffix", write("data", "text,label\n" + "\n".join(rows))
    yield "gzip named csv.gz", write("data.csv.gz", b"\x1f\x8b\x08\x00" + rng.randbytes(200))


def _bad_parquet(folder: Path, write: Callable, rng: random.Random) -> Iterator[tuple[str, Path]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(name: str, tbl, **kwargs) -> Path:
        path = folder / name
        pq.write_table(tbl, path, **kwargs)
        return path

    good = table("good.parquet", pa.table({"text": [f"t {i}" for i in range(60)], "label": [i % 2 for i in range(60)]}))
    yield "random bytes as parquet", write("random.parquet", rng.randbytes(3000))
    yield "truncated parquet", write("truncated.parquet", good.read_bytes()[: good.stat().st_size // 2])
    yield "footer only", write("footer.parquet", good.read_bytes()[-200:])
    yield "magic only", write("magic.parquet", b"PAR1PAR1")
    # A bomb: 500 rows of a 1 MB string, dictionary-encoded: a few KB on disk, 500 MB decoded.
    def repeated(value: str, rows: int, index_type) -> "pa.DictionaryArray":  # built without decoding it here
        return pa.DictionaryArray.from_arrays(pa.array([0] * rows, index_type), pa.array([value]))

    yield "parquet bomb (500 MB decoded)", table("bomb.parquet", pa.table({
        "text": repeated("x" * (1 << 20), 500, pa.int32()), "label": [i % 2 for i in range(500)]}), compression="zstd")
    yield "integer texts", table("ints.parquet", pa.table({"text": list(range(60)), "label": [i % 2 for i in range(60)]}))
    yield "struct texts", table("struct.parquet", pa.table({"text": [{"a": i} for i in range(60)],
                                                            "label": [i % 2 for i in range(60)]}))
    yield "list labels", table("listlabels.parquet", pa.table({"text": ["t"] * 60, "label": [[1, 0]] * 60}))
    yield "zero rows", table("zero.parquet", pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())}))
    yield "10 million constant rows", table("many.parquet", pa.table({
        "text": repeated("t", 10_000_000, pa.int8()), "label": pa.array([1] * 10_000_000, pa.int8())}),
        compression="zstd")
    yield "no columns", table("nocols.parquet", pa.table({}))


# ---- family 2: adapter zips (the Space) and adapter folders (a local registry) -------------------
def bad_adapters(good: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Adapter folders (file name -> bytes), each malformed."""
    config = json.loads((good / "adapter_config.json").read_bytes())
    weights = (good / "adapter_model.safetensors").read_bytes()
    keep = {"adapter_config.json": json.dumps(config).encode(), "adapter_model.safetensors": weights}

    def with_config(**change) -> dict[str, bytes]:
        return {**keep, "adapter_config.json": json.dumps({**config, **change}).encode()}

    yield "no adapter_config.json", {"adapter_model.safetensors": weights}
    yield "no weights", {"adapter_config.json": keep["adapter_config.json"]}
    yield "config not JSON", {**keep, "adapter_config.json": b"{peft_type: LORA"}
    yield "config a list", {**keep, "adapter_config.json": b"[]"}
    yield "config empty object", {**keep, "adapter_config.json": b"{}"}
    yield "config not UTF-8", {**keep, "adapter_config.json": b'{"peft_type": "\xff"}'}
    yield "config 4 MB string", with_config(task_type="x" * (4 << 20))
    yield "unknown peft_type", with_config(peft_type="NOT_A_METHOD")
    yield "peft_type a number", with_config(peft_type=7)
    yield "base model another model", with_config(base_model_name_or_path="someone/another-model")
    yield "base model a server path", with_config(base_model_name_or_path="/etc")
    yield "base model walks up", with_config(base_model_name_or_path="../../../../")
    yield "base model a list", with_config(base_model_name_or_path=["a", "b"])
    yield "pickled weights only", {"adapter_config.json": keep["adapter_config.json"],
                                   "adapter_model.bin": b"\x80\x04\x95" + b"\x00" * 64}
    for label, data in bad_safetensors(weights):
        yield f"weights: {label}", {**keep, "adapter_model.safetensors": data}
    yield "weights all NaN", {**keep, "adapter_model.safetensors": _with_values(weights, float("nan"))}
    yield "weights all inf", {**keep, "adapter_model.safetensors": _with_values(weights, float("inf"))}
    yield "weights all zero", {**keep, "adapter_model.safetensors": _with_values(weights, 0.0)}
    from safetensors.torch import save as save_tensors
    import torch

    yield "weights named for another model", {**keep, "adapter_model.safetensors": save_tensors(
        {"model.layers.0.mlp.bias": torch.ones(8)})}
    yield "weights of the wrong width", {**keep, "adapter_model.safetensors": save_tensors(
        {k: torch.ones(3) for k in _tensor_names(weights)})}


def _tensor_names(data: bytes) -> list[str]:
    (n,) = struct.unpack("<Q", data[:8])
    return [k for k in json.loads(data[8:8 + n]) if k != "__metadata__"]


def bad_zips(good: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    """Adapter zips: each malformed adapter zipped, and zips malformed as zips."""
    rng = random.Random(1)

    def zipped(name: str, files: dict[str, bytes], prefix: str = "adapter/") -> Path:
        path = folder / name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in files.items():
                archive.writestr(prefix + member, data)
        return path

    for i, (label, files) in enumerate(bad_adapters(good)):
        yield f"zip: {label}", zipped(f"adapter{i}.zip", files)
    keep = {p.name: p.read_bytes() for p in good.iterdir() if p.name.startswith("adapter_")}
    yield "zip: random bytes", _write(folder / "random.zip", rng.randbytes(4000))
    yield "zip: empty archive", zipped("empty.zip", {})
    yield "zip: only a README", zipped("readme.zip", {"README.md": b"# hi"})
    yield "zip: member walks up", zipped("up.zip", keep, prefix="../../")
    yield "zip: absolute member", zipped("abs.zip", keep, prefix="/tmp/taskemb-fuzz/")
    yield "zip: two adapters", zipped("two.zip", {**{f"a/{k}": v for k, v in keep.items()},
                                                  **{f"b/{k}": v for k, v in keep.items()}}, prefix="")
    yield "zip: 500 members", zipped("many.zip", {**keep, **{f"f{i}.txt": b"x" for i in range(500)}})
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("adapter/adapter_config.json", keep["adapter_config.json"])
        archive.writestr("adapter/adapter_model.safetensors", b"\0" * (300 << 20))  # 300 MB of zeros, ~300 KB
    yield "zip: bomb (300 MB of zeros)", bomb
    link = folder / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        archive.writestr("adapter/adapter_config.json", keep["adapter_config.json"])
        info = zipfile.ZipInfo("adapter/adapter_model.safetensors")
        info.external_attr = 0o120777 << 16  # a symbolic link to a server file
        archive.writestr(info, "/etc/passwd")
    yield "zip: weights a symlink", link


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- family 3: Hub repos (cards, embeddings, adapters) ---------------------------------------------
def bad_repos(good: dict[str, bytes]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A tagged repo's files (as published), each with one file malformed."""
    emb = json.loads(good["taskemb.json"])
    vector = good["taskemb.safetensors"]

    def with_json(**change) -> dict[str, bytes]:
        return {**good, "taskemb.json": json.dumps({**emb, **change}).encode()}

    yield "embedding json not JSON", {**good, "taskemb.json": b"{oops"}
    yield "embedding json a list", {**good, "taskemb.json": b"[]"}
    yield "embedding json 8 MB", {**good, "taskemb.json": json.dumps({**emb, "pad": "x" * (8 << 20)}).encode()}
    yield "method unknown", with_json(method="not-a-method")
    yield "method a list", with_json(method=["bitfit"])
    yield "signature a string", with_json(signature="bitfit")
    yield "signature of another width", with_json(signature={**emb["signature"], "modules": {"x": [1, 7]}})
    yield "dim disagrees", with_json(dim=emb["dim"] * 2)
    yield "step negative", with_json(step=-5)
    yield "step a string", with_json(step="five")
    yield "metrics a list", with_json(metrics=[1, 2])
    yield "task 100 KB", with_json(task="t" * 100_000)
    yield "base model another", with_json(base_model="someone/other-model")
    yield "embedding json disagrees with its vector file", with_json(signature_hash="0" * 16)
    for label, data in bad_safetensors(vector):
        yield f"vector: {label}", {**good, "taskemb.safetensors": data}
    yield "vector all NaN", {**good, "taskemb.safetensors": _with_values(vector, float("nan"))}
    yield "vector all zero", {**good, "taskemb.safetensors": _with_values(vector, 0.0)}
    yield "vector norm 1e6", {**good, "taskemb.safetensors": _with_values(vector, 1e6)}


# ---- family 4: index folders ------------------------------------------------------------------------
def bad_indexes(good: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = json.loads((good / "index.json").read_text())
    key = next(iter(meta["shards"]))
    shard = good / "signatures"
    count = [0]

    def variant(label: str, edit: Callable[[Path], None]) -> tuple[str, Path]:
        count[0] += 1
        out = folder / f"index{count[0]}"
        shutil.copytree(good, out)
        edit(out)
        return label, out

    def set_meta(**change):
        return lambda out: (out / "index.json").write_text(json.dumps({**meta, **change}))

    def set_shard(**change):
        return set_meta(shards={key: {**meta["shards"][key], **change}})

    def write_rows(mutate):
        def edit(out: Path):
            path = out / "signatures" / f"{key}.parquet"
            rows = pq.read_table(path).to_pylist()
            pq.write_table(pa.Table.from_pylist(mutate(rows)), path)
        return edit

    yield variant("index.json not JSON", lambda out: (out / "index.json").write_text("{oops"))
    yield variant("index.json a list", lambda out: (out / "index.json").write_text("[]"))
    yield variant("unknown format", set_meta(format="someone-else/9"))
    yield variant("shards a list", set_meta(shards=[1, 2]))
    yield variant("shard key walks up", set_meta(shards={"../../../etc/passwd": meta["shards"][key]}))
    yield variant("shard dim wrong", set_shard(dim=meta["shards"][key]["dim"] + 1))
    yield variant("shard rows wrong", set_shard(rows=10_000_000))
    yield variant("shard dtype unknown", set_shard(dtype="float99"))
    yield variant("shard signature of another model", set_shard(base_model="someone/other-model"))
    yield variant("no vectors file", lambda out: (out / "signatures" / f"{key}.safetensors").unlink())
    yield variant("no rows file", lambda out: (out / "signatures" / f"{key}.parquet").unlink())
    yield variant("rows file random bytes", lambda out: _write(out / "signatures" / f"{key}.parquet",
                                                               random.Random(2).randbytes(5000)))
    vectors = (shard / f"{key}.safetensors").read_bytes()
    for label, data in bad_safetensors(vectors):
        yield variant(f"vectors: {label}", lambda out, data=data: _write(out / "signatures" / f"{key}.safetensors", data))
    yield variant("vectors all NaN", lambda out: _write(out / "signatures" / f"{key}.safetensors",
                                                         _with_values(vectors, float("nan"))))
    yield variant("rows missing a column", write_rows(lambda rows: [{k: v for k, v in r.items() if k != "task"} for r in rows]))
    yield variant("one row too many", write_rows(lambda rows: rows + [dict(rows[0], name="extra")]))
    yield variant("one row too few", write_rows(lambda rows: rows[:-1]))
    yield variant("rows of another method", write_rows(lambda rows: [dict(r, method="lora") for r in rows]))
    yield variant("rows of another base model", write_rows(lambda rows: [dict(r, base_model="someone/other") for r in rows]))
    yield variant("metrics not JSON", write_rows(lambda rows: [dict(r, metrics="{oops") for r in rows]))
    yield variant("duplicate names", write_rows(lambda rows: [dict(r, name=rows[0]["name"]) for r in rows]))


# ---- running the cases ---------------------------------------------------------------------------------
def _outcome(run: Callable[[], object]) -> tuple[str, str]:
    from taskemb_hub.errors import TaskEmbHubError

    try:
        result = run()
    except TaskEmbHubError as err:
        return "refused", str(err)
    except Exception as err:  # noqa: BLE001 - what the fuzz looks for
        if REACHED_TUNING in str(err):
            return "accepted", "reached tuning"
        return "crash", "".join(traceback.format_exception_only(type(err), err)).strip()[:500]
    return _answer_outcome(result)


def _answer_outcome(result) -> tuple[str, str]:
    message = getattr(result, "message", None)
    if message is None:
        return "accepted", repr(result)[:200]
    text = str(message).removeprefix("⚠️ ")
    if getattr(result, "ranking", None) is not None:
        return "accepted", text
    if text.startswith("Unexpected error") and REACHED_TUNING in text:
        return "accepted", "reached tuning"
    if text.startswith("Unexpected error"):
        return "crash", text
    return "refused", text


def _space(setup: dict, root: Path):
    from taskemb_hub.ranking.selector import AutoSourceSelector
    from taskemb_hub.space import SpaceConfig, UploadLimits
    from taskemb_hub.space import _handlers as handlers

    def never_tune():
        def tune(*args, **kwargs):
            raise RuntimeError(REACHED_TUNING)
        return tune

    handlers._target_from_data = never_tune  # a malformed upload must be refused before tuning
    state = handlers.RegistryState(lambda: AutoSourceSelector.from_local(setup["registry"]), "fuzz")
    limits = UploadLimits(max_file_bytes=200_000, max_unzipped_bytes=2 << 20, max_zip_members=64,
                          max_rows=5_000, min_rows=32)
    config = SpaceConfig(limits=limits, work_dir=str(root / "answers"))
    return handlers, state, config


def run_all(root: Path) -> dict:
    setup = _setup(root)
    stored = {"registry": _digest(setup["registry"]), "index": _digest(setup["index"])}
    handlers, state, config = _space(setup, root)
    results = []

    def record(family: str, case: str, run: Callable[[], object]) -> None:
        outcome, message = _outcome(run)
        results.append({"family": family, "case": case, "outcome": outcome, "message": message,
                        "max_rss_mb": peak_rss_mb()})

    uploads = root / "uploads"
    uploads.mkdir()
    for case, path in bad_data_files(uploads):
        record("data upload", case, lambda: handlers.rank_data(state, config, file_path=str(path),
                                                               text_column="text", label_column="label"))
    zips = root / "zips"
    zips.mkdir()
    for case, path in bad_zips(setup["adapter"], zips):
        record("adapter zip", case, lambda: handlers.rank_adapter(state, config, zip_path=str(path)))
    record_adapter_folders(setup, root, record)
    kept = {}
    record_hub_repos(setup, root, record, kept)
    indexes = root / "indexes"
    indexes.mkdir()
    for case, folder in bad_indexes(setup["index"], indexes):
        record("index folder", case, lambda: _rank_index(folder))
    after = {"registry": _digest(setup["registry"]), "index": _digest(setup["index"])}
    return {"results": results, "stored_unchanged": after == stored, "hub_good_repo_kept": kept.get("hub"),
            "stored_files": sum(len(v) for v in stored.values()),
            "max_rss_mb": peak_rss_mb(),
            "roots": [str(root), str(Path.home()), tempfile.gettempdir()]}


# Well-formed adapters that only a Space must refuse (another base model than its registry's, a base
# model named by a server path, an oversized config): a registry owner may add such folders locally.
VISITOR_ONLY = {"base model another model", "base model a server path", "base model walks up", "config 4 MB string",
                "weights of the wrong width"}


def record_adapter_folders(setup: dict, root: Path, record) -> None:
    """Each malformed adapter folder added to the stored local registry, under an existing name too."""
    from taskemb_hub.registries.local import LocalRegistry

    registry = LocalRegistry(setup["registry"])
    for i, (case, files) in enumerate(bad_adapters(setup["adapter"])):
        if case in VISITOR_ONLY:
            continue
        folder = root / "folders" / f"adapter{i}"
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        name = "toy-a" if i % 2 else f"new-{i}"  # half try to replace a stored entry
        record("adapter folder", case, lambda: registry.add(folder, name=name, overwrite=bool(i % 2)))


def record_hub_repos(setup: dict, root: Path, record, kept: dict) -> None:
    """One good published repo and one bad repo per case on a local Hub; one sync reads them all."""
    import pytest

    from local_hub import local_hub_fixture

    with pytest.MonkeyPatch.context() as monkeypatch:
        yield_hub = local_hub_fixture(monkeypatch, root / "hub")
        hub = next(yield_hub)
        _bad_repos_on(hub, setup, record, kept)
        next(yield_hub, None)


def _bad_repos_on(hub, setup: dict, record, kept: dict) -> None:
    from taskemb_hub.publishing import publish
    from taskemb_hub.ranking.selector import AutoSourceSelector

    publish(setup["adapter"], "good/toy-a", endpoint=hub.endpoint, base_model_id=BASE, token="hf_fuzz_token")
    good = dict(hub.state.repo("good/toy-a").files)
    cases = {}
    for i, (case, files) in enumerate(bad_repos(good)):
        cases[f"fuzz/bad-{i:03d}"] = case
        hub.state.add_repo(f"fuzz/bad-{i:03d}", files)
    try:
        selector = AutoSourceSelector.from_hub(endpoint=hub.endpoint, token=False)
    except Exception as err:  # noqa: BLE001 - the whole sync failing is every case's outcome
        for case in cases.values():
            record("hub repo", case, lambda err=err: _raise(err))
        return
    names = {e.name for e in selector.entries}
    skipped = dict(selector.skipped)
    for repo_id, case in cases.items():
        if repo_id in names:
            record("hub repo", case, lambda r=repo_id: f"{r} read as an entry")
        elif repo_id in skipped:
            record("hub repo", case, lambda r=skipped[repo_id]: _refuse(r))
        else:  # a tagged repo left out without a reason: the publisher is never told
            record("hub repo", case, lambda r=repo_id: f"{r} left out silently")
    kept["hub"] = "good/toy-a" in names and dict(hub.state.repo("good/toy-a").files) == good


def _raise(err: Exception):
    raise err


def _refuse(message: str):
    from taskemb_hub.errors import TaskEmbHubError

    raise TaskEmbHubError(message)


def _rank_index(folder: Path):
    from taskemb_hub.ranking.selector import AutoSourceSelector

    selector = AutoSourceSelector.from_index(folder)
    if selector.skipped and not selector.entries:
        _refuse(selector.skipped[0][1])
    ranking = selector.rank(selector.entries[0].name)
    if selector.skipped:
        _refuse("; ".join(f"{n}: {r}" for n, r in selector.skipped))
    return ranking


def main(out: str) -> None:
    with tempfile.TemporaryDirectory(prefix="taskemb-fuzz-") as tmp:
        report = run_all(Path(tmp))
    Path(out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
