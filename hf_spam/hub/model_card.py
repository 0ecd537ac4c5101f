"""The model card (``README.md``) of a run folder, built with ``huggingface_hub.ModelCard`` from its files.

Everything comes from what the run wrote: ``metrics.json``, ``args.json``, ``history.json``, ``config.json``
(or ``adapter_config.json``) and ``curves.png``. :class:`RunInfo` is the one place that reads them,
defensively, so older and newer ``metrics.json`` layouts give the same card.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..run_folder import (
    ADAPTER_BASE_FILE,
    ADAPTER_CONFIG,
    ARGS_FILE,
    CURVES_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    read_json,
)
from .access import is_local, looks_like_hub_id

logger = logging.getLogger(__name__)

DATASETS = {"sms_spam": ("ucirvine/sms_spam", "SMS Spam Collection"), "imdb": ("stanfordnlp/imdb", "IMDB")}
METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc")
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "roc_auc": "ROC AUC",
    "loss": "Loss",
}
PEFT_NAMES = {  # peft_type -> the method's name in prose, and its tag
    "LORA": ("LoRA", "lora"),
    "IA3": ("(IA)³", "ia3"),
    "PROMPT_TUNING": ("prompt-tuning", "prompt-tuning"),
    "P_TUNING": ("P-tuning", "p-tuning"),
    "PREFIX_TUNING": ("prefix-tuning", "prefix-tuning"),
}
EXAMPLES = {
    "sms_spam": ["WINNER!! Claim your free prize now, call 09061701461", "I'll be home soon, want anything?"],
    "imdb": ["A moving, beautifully acted film.", "Two hours I will never get back."],
}


@dataclass
class RunInfo:
    """What a card needs from a run folder; every key of the run's JSON files is read here, nowhere else."""

    run_dir: Path
    metrics: dict
    args: dict
    config: dict
    adapter: dict | None
    history: list

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RunInfo:
        run_dir = Path(run_dir)
        metrics = read_json(run_dir, METRICS_FILE)
        if not isinstance(metrics, dict):
            raise FileNotFoundError(f"{run_dir / METRICS_FILE}: missing or not JSON; is this a run folder?")
        adapter = read_json(run_dir, ADAPTER_CONFIG)
        return cls(
            run_dir,
            metrics,
            read_json(run_dir, ARGS_FILE) or {},
            read_json(run_dir, "config.json") or {},
            adapter if isinstance(adapter, dict) else None,
            read_json(run_dir, HISTORY_FILE) or [],
        )

    def arg(self, name: str, default: Any = None) -> Any:
        """An argument of the run, from any argument group of ``args.json``."""
        for group in self.args.values():
            if isinstance(group, dict) and name in group:
                return group[name]
        return default

    def split(self, name: str) -> dict:
        """Metrics of one split (``train``/``validation``/``test``): ``splits.<name>``, or ``<name>``."""
        for holder in (self.metrics.get("splits"), self.metrics.get("metrics"), self.metrics):
            if isinstance(holder, dict) and isinstance(holder.get(name), dict):
                return holder[name]
        return {}

    @property
    def name(self) -> str:
        return str(self.metrics.get("run") or self.run_dir.name)

    @property
    def model(self) -> str:
        return str(self.metrics.get("model") or self.arg("model") or self.config.get("_name_or_path", "?"))

    @property
    def dataset(self) -> str:
        return str(self.metrics.get("dataset") or self.arg("dataset") or "?")

    @property
    def report(self) -> dict:
        return self.metrics.get("split_report") or {}

    @property
    def training(self) -> dict:
        return self.metrics.get("training") or {}

    @property
    def parameters(self) -> dict:
        return self.metrics.get("parameters") or {}

    @property
    def labels(self) -> list[str]:
        id2label = self.config.get("id2label")
        if isinstance(id2label, dict) and id2label:
            return [id2label[k] for k in sorted(id2label, key=int)]
        if self.report.get("label_names"):
            return list(self.report["label_names"])
        size = len(self.split("test").get("confusion_matrix") or []) or 2
        return [f"LABEL_{i}" for i in range(size)]

    def split_size(self, name: str) -> int | None:
        return (self.metrics.get("split_sizes") or {}).get(name) or self.split(name).get("n")


def hub_base_model(info: RunInfo, base_model: str | None = None) -> str | None:
    """The hub id of the starting model, for the card metadata.

    ``base_model`` when given, else the run's model when it is a hub id (not a local folder) with pretrained
    weights; None when unknown (a local folder, random weights).
    """
    if base_model:
        return base_model
    source = (info.adapter or {}).get("base_model_name_or_path") or info.model
    if info.arg("weights") == "random" or is_local(source) or source.startswith((".", "/", "~")):
        return None
    return source if looks_like_hub_id(source) else None


def card_data(info: RunInfo, repo_id: str | None, base_model: str | None, license: str) -> ModelCardData:
    """The YAML metadata: base model, library, datasets, task, license, tags, metrics and eval results."""
    dataset_id, dataset_name = DATASETS.get(info.dataset, (None, Path(info.dataset).stem))
    results = [
        EvalResult(
            task_type="text-classification",
            task_name="Text Classification",
            dataset_type=dataset_id or Path(info.dataset).stem,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=metric,
            metric_name=METRIC_NAMES[metric],
            metric_value=info.split(split)[metric],
        )
        for split in ("test", "validation")
        for metric in METRICS
        if isinstance(info.split(split).get(metric), (int, float))
    ]
    model_type = info.config.get("model_type") or info.arg("implementation")
    tags = ["text-classification", "hf_spam", info.dataset, model_type]
    if info.adapter:
        tags += ["peft", PEFT_NAMES.get(str(info.adapter.get("peft_type")), ("", ""))[1]]
    return ModelCardData(
        base_model=hub_base_model(info, base_model),
        library_name="peft" if info.adapter else "transformers",
        datasets=[dataset_id] if dataset_id else None,
        pipeline_tag="text-classification",
        license=license,
        tags=[t for t in tags if t and t != "?"],
        metrics=[m for m in METRICS if isinstance(info.split("test").get(m), (int, float))],
        model_name=(repo_id or info.name).split("/")[-1],
        eval_results=results or None,
    )


def build_model_card(
    run_dir: str | os.PathLike,
    repo_id: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
) -> ModelCard:
    """The model card of a run folder: metadata (:func:`card_data`) and a body a reader can check.

    ``repo_id`` is where the card will live (used in the "how to use" snippets; the run folder otherwise).
    ``base_model`` is the hub id of the starting model, for runs that started from a local folder.
    """
    info = RunInfo.read(run_dir)
    data = card_data(info, repo_id, base_model, license)
    where = repo_id or str(Path(run_dir))
    sections = [
        _summary(info, where, data.base_model),
        _labels(info),
        _data_section(info),
        _training(info),
        _results(info),
        _usage(info, where, data.base_model),
        _limitations(info),
        _reproduce(info),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n")


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "–" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows])


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``p`` measured on ``n`` examples."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _summary(info: RunInfo, where: str, base_model: str | None) -> str:
    test = info.split("test")
    method = PEFT_NAMES.get(str((info.adapter or {}).get("peft_type")), ("peft",))[0]
    kind = f"A {method} adapter" if info.adapter else "A text classifier"
    start = "randomly initialised weights" if info.arg("weights") == "random" else f"`{info.model}`"
    if base_model and base_model != info.model:
        start = f"`{base_model}` (run from the local copy `{info.model}`)"
    line = (
        f"{kind} for **{info.dataset}** ({' / '.join(info.labels)}), fine-tuned with hf_spam from "
        f"{start} ({info.metrics.get('implementation', 'transformers')} implementation)."
    )
    if "accuracy" in test and test.get("n"):
        lo, hi = _wilson(test["accuracy"], test["n"])
        line += (
            f" Test accuracy **{test['accuracy']:.4f}** on {test['n']} held-out examples "
            f"(95 % Wilson interval {lo:.3f}–{hi:.3f})."
        )
    return f"# {where.split('/')[-1]}\n\n{line}"


def _labels(info: RunInfo) -> str:
    rows = [[i, f"`{label}`"] for i, label in enumerate(info.labels)]
    return "## Task and labels\n\nSingle-label text classification.\n\n" + _table(["id", "label"], rows)


def _data_section(info: RunInfo) -> str:
    report = info.report
    source = info.arg("data_source") or "downloaded by hf_spam"
    text = (
        f"## Data\n\nDataset `{info.dataset}` (source: `{source}`), "
        f"split protocol `{report.get('protocol', info.arg('protocol'))}`, "
        f"seed {report.get('seed', info.arg('seed'))}, dedup {report.get('dedup', info.arg('dedup'))}; "
        f"{report.get('rows_in', '?')} rows read."
    )
    per_label = report.get("rows") or {}
    if per_label:
        rows = [
            [
                split,
                *[counts.get(label, 0) for label in info.labels],
                sum(counts.values()),
                info.split_size(split),
            ]
            for split, counts in per_label.items()
        ]
        text += "\n\n" + _table(["split", *info.labels, "rows in split", "rows used"], rows)
    notes = [
        f"{key.replace('_', ' ')}: {report[key]}"
        for key in (
            "rows_dropped_by_undersampling",
            "rows_dropped_for_leakage",
            "duplicate_rows_in",
            "duplicate_texts_crossing",
        )
        if key in report
    ]
    if notes:
        text += "\n\n" + "; ".join(notes) + "."
    return text


def _training(info: RunInfo) -> str:
    t, p = info.training, info.parameters
    d, best, seconds = t.get("details") or {}, t.get("best") or {}, info.metrics.get("seconds") or {}
    share = f" ({100 * p['trainable'] / p['total']:.2f} %)" if p.get("total") else ""
    facts = [
        [
            "trainable / total parameters",
            f"{p.get('trainable', '?'):,} / {p.get('total', '?'):,}{share}" if p else "?",
        ],
        ["device", f"{info.metrics.get('device', '?')} × {info.metrics.get('num_processes', 1)} process(es)"],
        ["mixed precision", info.metrics.get("mixed_precision")],
        ["training time", f"{seconds['training']:.1f} s" if "training" in seconds else None],
        ["evaluation time", f"{seconds['evaluation']:.1f} s" if "evaluation" in seconds else None],
        ["optimizer steps / epochs", f"{d.get('optimizer_steps')} / {d.get('epochs_completed')}"],
        ["examples seen (per second)", f"{t.get('examples')} ({_fmt(t.get('examples_per_second'), 1)})"],
        ["best step (validation)", f"{best.get('step')} ({best.get('metric')} {_fmt(best.get('value'), 4)})"],
        ["stopped early", d.get("stopped_early")],
        ["peak memory", f"{(info.metrics.get('peak_memory') or {}).get('mb', 0):.0f} MB"],
    ]
    text = "## Training\n\n" + _table(["", ""], facts)
    for group, values in info.args.items():
        if isinstance(values, dict) and group != "versions":
            rows = [[f"`{k}`", f"`{json.dumps(v)}`"] for k, v in values.items()]
            text += f"\n\n**{group}**\n\n" + _table(["hyper-parameter", "value"], rows)
    if info.adapter:
        keep = ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "feedforward_modules",
                "num_virtual_tokens", "prompt_tuning_init", "encoder_hidden_size", "prefix_projection",
                "modules_to_save", "bias")  # fmt: skip
        rows = [[f"`{k}`", f"`{json.dumps(info.adapter.get(k))}`"] for k in keep if k in info.adapter]
        text += "\n\n**adapter**\n\n" + _table(["setting", "value"], rows)
    if isinstance(info.args.get("versions"), dict):
        text += "\n\nVersions: " + ", ".join(f"{k} {v}" for k, v in info.args["versions"].items()) + "."
    return text


def _results(info: RunInfo) -> str:
    splits = [s for s in ("train", "validation", "test") if info.split(s)]
    keys = ["n", *METRICS, "loss"]
    rows = [[s, *[info.split(s).get(k) for k in keys]] for s in splits]
    text = "## Results\n\n" + _table(["split", *[METRIC_NAMES.get(k, k) for k in keys]], rows)
    text += "\n\nWith two classes, precision, recall and F1 are those of the positive class (the last label)."
    matrix = info.split("test").get("confusion_matrix")
    if matrix:
        labels = info.labels
        per_class = []
        for i, label in enumerate(labels):
            predicted = sum(row[i] for row in matrix)
            actual = sum(matrix[i])
            per_class.append(
                [
                    label,
                    matrix[i][i] / predicted if predicted else None,
                    matrix[i][i] / actual if actual else None,
                    actual,
                ]
            )
        text += "\n\nPer class, on the test split:\n\n" + _table(
            ["class", "precision", "recall", "support"], per_class
        )
        rows = [[f"**{labels[i]}**", *row] for i, row in enumerate(matrix)]
        text += "\n\nConfusion matrix on the test split (rows: true label, columns: predicted):\n\n" + _table(
            ["", *labels], rows
        )
    if (info.run_dir / CURVES_FILE).is_file():
        text += "\n\n### Training curves\n\n![training and validation loss and accuracy](curves.png)"
    return text


def _usage(info: RunInfo, where: str, base_model: str | None = None) -> str:
    texts = EXAMPLES.get(info.dataset, ["An example text."])
    ours = info.arg("implementation") == "hf_spam" and (info.run_dir / ADAPTER_BASE_FILE).is_file()
    prefix = (info.adapter or {}).get("peft_type") == "PREFIX_TUNING"
    if info.adapter and (ours or prefix):
        code = (
            "from hf_spam.serving import Predictor\n\n"
            f'predict = Predictor("{where}")  # rebuilds the base (lora_base.json), then loads the adapter\n'
            f"print(predict({texts!r}))"
        )
        note = (
            "The adapter sits on hf_spam's own GPT-2, which peft alone cannot rebuild: use hf_spam."
            if ours
            else "peft 0.21 cannot run prefix tuning on transformers 5 models by itself (it passes "
            "`past_key_values`, which transformers 5 calls `cache`); hf_spam bridges the two: use hf_spam."
        )
    elif info.adapter:
        code = (
            "from peft import AutoPeftModelForSequenceClassification\n"
            "from transformers import AutoTokenizer\n\n"
            f'model = AutoPeftModelForSequenceClassification.from_pretrained("{where}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")\n'
            f'inputs = tokenizer({texts[0]!r}, return_tensors="pt")\n'
            "print(model(**inputs).logits.softmax(-1))"
        )
        note = (
            f"The adapter loads onto its base model "
            f"`{base_model or info.adapter.get('base_model_name_or_path')}` (as written in the pushed "
            "`adapter_config.json`), which must be available where you run this."
        )
    else:
        code = (
            "from transformers import pipeline\n\n"
            f'classifier = pipeline("text-classification", model="{where}")\n'
            "texts = [\n" + "".join(f"    {json.dumps(t, ensure_ascii=False)},\n" for t in texts) + "]\n"
            "print(classifier(texts))"
        )
        note = ""
    cli = f'python recipes/predict.py --run {where} "{texts[0]}"'
    text = f"## How to use\n\n```python\n{code}\n```\n\n{note}".rstrip()
    return text + f'\n\nWith hf_spam: `hf_spam.serving.Predictor("{where}")`, or\n\n```bash\n{cli}\n```'


def _limitations(info: RunInfo) -> str:
    items = []
    if info.arg("weights") == "random":
        items.append(
            f"The backbone started from **randomly initialised weights**, not from pretrained `{info.model}` "
            "weights: it knows nothing of language beyond its training examples, and generalises worse "
            "than a "
            "fine-tuned pretrained model."
        )
    test_n = info.split("test").get("n")
    if test_n and test_n < 1000:
        items.append(f"The test split has only {test_n} examples: see the interval in the summary.")
    for name, splits in (
        ("max_train_samples", "the train split"),
        ("max_eval_samples", "each evaluation split"),
    ):
        if info.arg(name):
            items.append(f"Only a random subset of {info.arg(name)} rows of {splits} was used (`--{name}`).")
    if info.report.get("protocol") == "book":
        items.append(
            "The classes were balanced by undersampling (the book's protocol): on real traffic, where "
            "one class is rarer, precision on the rare class will be lower than measured here."
        )
    if info.report.get("duplicate_texts_crossing") and not info.report.get("dedup"):
        items.append(
            f"{info.report['duplicate_texts_crossing']} duplicate texts appear in more than one split "
            "(rerun with `--dedup` for a leakage-free estimate)."
        )
    if info.arg("pooling") not in (None, "last") or info.arg("causal") is False:
        items.append(
            "This run used pooling/causal settings transformers' GPT-2 classes do not have: the model "
            "ships its own code, so `pipeline()` needs `trust_remote_code=True` (hf_spam's "
            "`Predictor` needs nothing)."
        )
    items.append(f"Trained and evaluated on `{info.dataset}` only; other domains and languages are untested.")
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items)


def _reproduce(info: RunInfo) -> str:
    command = info.args.get("command")
    if not command:
        return ""
    script = command[0]
    if Path(script).parent.name == "commands":  # run as a module (a study): the recipe script of that name
        script = f"recipes/{Path(script).name}"
    return f"## Reproduce\n\n```bash\naccelerate launch {shlex.join([script, *command[1:]])}\n```"
