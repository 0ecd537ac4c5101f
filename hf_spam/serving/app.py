"""A gradio web app for one run: classify a message, classify a file, read the run's card.

    python recipes/app.py --run outputs/<run>          # a run folder, or a hub repo id

The only module that imports gradio (``pip install -e ".[app]"``). Three tabs:

- **Classify**: a text box -> the label at the threshold and every class's probability; the threshold
  slider starts at the run's operating point (``operating_point.json``, chosen on validation); example
  messages from the run's test split (``examples.json``, written at training time);
- **Batch**: upload a ``.csv`` (column ``text``, else the first column; a ``label`` column is compared) or
  a ``.txt`` file (one text per line) -> a table with one row per text, downloadable as csv; the whole file
  goes through the Predictor's fast path at once (sorted, token-budgeted batches), with a progress bar;
- **Model card**: test metrics at 0.5 and at the chosen threshold, calibration, the confusion matrix at
  the threshold, and the training curves (``curves.png``).

Endpoints for ``gradio_client``: ``/classify`` (text, threshold) and ``/batch`` (file, threshold).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ..hub.access import resolve_run
from ..run_folder import CURVES_FILE, METRICS_FILE, read_examples, read_json, run_file
from .arguments import DEFAULT_LONG_TEXT, LongText, ServingArguments
from .predict import Predictor

logger = logging.getLogger(__name__)

MAX_BATCH_ROWS = 10_000


def classify(
    predictor: Predictor, text: str, threshold: float | None, text_pair: str | None = None
) -> tuple[str, dict[str, float], str]:
    """The label at ``threshold``, the class probabilities, and one line on how the text was read;
    ``text_pair``: the second text, for a run trained on sentence pairs."""
    if not text or not text.strip() or (predictor.text_pair_column and not (text_pair or "").strip()):
        return "", {}, "type or paste a message" + (" and its pair" if predictor.text_pair_column else "")
    pairs = [text_pair or ""] if predictor.text_pair_column else None
    result = predictor([text], threshold=threshold, text_pairs=pairs)[0]
    how = f"{result['tokens']} tokens, long_text={result['long_text']}, {result['chunks']} window(s)"
    if result["threshold"] is not None:
        positive = predictor.id2label[1]
        how = f"{result['label']}: p({positive}) = {result['probabilities'][positive]:.4f}, " + (
            f"threshold {result['threshold']:.4f}; temperature {result['temperature']:.3f}; {how}"
        )
    return result["label"], result["probabilities"], how


def read_batch(path: str | os.PathLike, pair_column: str | None = None) -> pd.DataFrame:
    """The texts (and labels, if any) of an uploaded file: ``.txt`` one text per non-empty line; ``.csv`` /
    ``.tsv`` the ``text`` column (else the first), with ``label`` when the file has one, and the
    ``pair_column`` (sentence pairs: the run's second text column, or ``text_pair``) as ``text_pair``."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str)
        column = "text" if "text" in frame.columns else frame.columns[0]
        out = pd.DataFrame({"text": frame[column].fillna("")})
        if "label" in frame.columns and column != "label":
            out["label"] = frame["label"]
        if pair_column:
            found = next((c for c in (pair_column, "text_pair") if c in frame.columns), None)
            if found is None:
                raise gr.Error(f"{path.name}: this run reads sentence pairs: give a column {pair_column}")
            out["text_pair"] = frame[found].fillna("")
    elif pair_column:
        raise gr.Error(f"{path.name}: this run reads sentence pairs: a .csv or .tsv with {pair_column}")
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        out = pd.DataFrame({"text": [line for line in lines if line.strip()]})
    if len(out) > MAX_BATCH_ROWS:
        raise gr.Error(f"{path.name}: {len(out)} rows; the app takes at most {MAX_BATCH_ROWS}")
    return out


def classify_batch(
    predictor: Predictor, path: str | None, threshold: float | None, progress: bool = False
) -> tuple[pd.DataFrame, str | None, str]:
    """A table with one row per text of the file at ``path``, the same table as a csv file, a summary;
    ``progress``: a tqdm bar over the batches (the app shows it through ``gr.Progress(track_tqdm=True)``)."""
    if not path:
        return pd.DataFrame(), None, "upload a .csv or .txt file"
    frame = read_batch(path, predictor.text_pair_column)
    pairs = frame["text_pair"].tolist() if predictor.text_pair_column else None
    results = predictor(frame["text"].tolist(), threshold=threshold, progress=progress, text_pairs=pairs)
    table = frame.rename(columns={"label": "true_label"})
    table.insert(1, "predicted", [r["label"] for r in results])
    for name in predictor.id2label.values():
        table[f"p({name})"] = [round(r["probabilities"][name], 4) for r in results]
    table["tokens"] = [r["tokens"] for r in results]
    table["chunks"] = [r["chunks"] for r in results]
    summary = f"{len(table)} texts from {Path(path).name}"
    if "true_label" in table.columns:
        known = table["true_label"].isin(list(predictor.id2label.values()))
        right = (table.loc[known, "true_label"] == table.loc[known, "predicted"]).sum()
        summary += f"; accuracy {right}/{known.sum()} = {right / max(known.sum(), 1):.4f} against its labels"
        if len(predictor.id2label) == 2:
            summary += " (" + _binary_counts(table[known], predictor.id2label[1]) + ")"
    out_dir = Path(tempfile.mkdtemp(prefix="hf_spam_batch_"))
    csv_path = out_dir / f"{Path(path).stem}_predictions.csv"
    table.to_csv(csv_path, index=False)
    return table, str(csv_path), summary


def _binary_counts(table: pd.DataFrame, positive: str) -> str:
    true, predicted = table["true_label"] == positive, table["predicted"] == positive
    tp, fp, fn = int((true & predicted).sum()), int((~true & predicted).sum()), int((true & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return f"{positive}: precision {precision:.4f}, recall {recall:.4f}; false alarms {fp}, missed {fn}"


def card_markdown(run: str, metrics: dict[str, Any] | None) -> str:
    """The run's card: what was trained on what, the operating point, test metrics, confusion matrix."""
    if not metrics:
        return f"**{run}** has no metrics.json: no card to show."
    lines = [
        f"### {metrics['run']}",
        f"`{metrics['model']}` on `{metrics['dataset']}` ({metrics['recipe']})",
        "",
    ]
    point = metrics.get("operating_point") or {}
    test = metrics["splits"]["test"]
    if point.get("threshold") is None:
        lines.append(f"Predictions at argmax; test accuracy {test['accuracy']:.4f} (n = {test['n']}).")
        return "\n".join(lines)
    lines += [
        f"Threshold **{point['threshold']:.4f}** on p({point['positive_label']}), chosen on validation "
        f"({point['threshold_for']}); temperature {point['temperature']:.3f} "
        f"(calibrate: {point['calibrate']}).",
        "",
        f"| test (n = {test['n']}) | accuracy | precision | recall | F1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, key in (("at 0.5", "at_0.5"), (f"at {point['threshold']:.4f}", "at_threshold")):
        m = point[key]["test"]
        lines.append(
            f"| {name} | {m['accuracy']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} |"
        )
    calibration = point["calibration"]["test"]
    lines += [
        "",
        f"PR AUC {calibration['after']['pr_auc']:.4f}; Brier {calibration['before']['brier']:.4f} -> "
        f"{calibration['after']['brier']:.4f}; ECE {calibration['before']['ece']:.4f} -> "
        f"{calibration['after']['ece']:.4f} (before -> after calibration; {point['ece_binning']}).",
        "",
        "Confusion matrix at the threshold (rows: true, columns: predicted; "
        f"class 1 = {point['positive_label']}):",
        "",
        "| | predicted 0 | predicted 1 |",
        "| --- | --- | --- |",
    ]
    matrix = point["at_threshold"]["test"]["confusion_matrix"]
    lines += [f"| true {i} | {row[0]} | {row[1]} |" for i, row in enumerate(matrix)]
    return "\n".join(lines)


def build_app(
    run: str | os.PathLike,
    predictor: Predictor | None = None,
    long_text: LongText = DEFAULT_LONG_TEXT,
    serving: ServingArguments | None = None,
) -> gr.Blocks:
    """The gradio app of ``run`` (a run folder or a hub repo id); ``predictor`` reuses a loaded model, else
    one is loaded as ``serving`` says (default: float32 torch, reading long texts as ``long_text`` says)."""
    run = str(run)
    folder = resolve_run(run)  # a hub repo id is downloaded once, through the hub cache
    predictor = predictor or Predictor.from_arguments(
        folder, serving or ServingArguments(long_text=long_text)
    )
    binary = len(predictor.id2label) == 2
    start = predictor.threshold if predictor.threshold is not None else 0.5
    examples = read_examples(folder)
    metrics = read_json(folder, METRICS_FILE)
    curves = run_file(folder, CURVES_FILE)
    with gr.Blocks(title=f"hf_spam: {Path(run).name}") as demo:
        gr.Markdown(f"## {Path(run).name}\nA text classifier trained with hf_spam: `{run}`")
        name = predictor.id2label.get(1)
        threshold = gr.Slider(0.0, 1.0, value=start, step=0.001, visible=binary,
                              label=f"threshold on p({name}) (the run's: {start:.4f})")  # fmt: skip
        with gr.Tab("Classify"):
            text = gr.Textbox(lines=4, label="message", elem_id="message")
            inputs = [text, threshold]
            if predictor.text_pair_column:  # a run trained on sentence pairs: the second text too
                label = f"second text ({predictor.text_pair_column})"
                inputs.append(gr.Textbox(lines=2, label=label, elem_id="text_pair"))
            button = gr.Button("Classify", variant="primary", elem_id="classify")
            decision = gr.Textbox(label="label", elem_id="decision", interactive=False)
            probabilities = gr.Label(label="class probabilities", show_heading=False, elem_id="probabilities")
            details = gr.Markdown(elem_id="details")
            outputs = [decision, probabilities, details]
            run_one = lambda t, th, p=None: classify(predictor, t, th if binary else None, p)  # noqa: E731
            button.click(run_one, inputs, outputs, api_name="classify")
            text.submit(run_one, inputs, outputs, api_name=False)
            threshold.release(run_one, inputs, outputs, api_name=False)
            if examples:
                gr.Examples(
                    [[e["text"]] for e in examples], inputs=[text], label="examples from the test split"
                )
            else:
                gr.Markdown("*This run has no examples.json: no example messages to show.*")
        with gr.Tab("Batch"):
            upload = gr.File(label="a .csv (column text, optional label) or .txt (one text per line)",
                             file_types=[".csv", ".tsv", ".txt"], type="filepath")  # fmt: skip
            batch_button = gr.Button("Classify the file", variant="primary")
            summary = gr.Markdown()
            table = gr.Dataframe(label="predictions", interactive=False)
            download = gr.File(label="download the predictions (csv)")
            batch_button.click(
                lambda p, th, bar=gr.Progress(track_tqdm=True): classify_batch(  # noqa: B008
                    predictor, p, th if binary else None, progress=True
                ),
                [upload, threshold], [table, download, summary], api_name="batch",
            )  # fmt: skip
        with gr.Tab("Model card"):
            gr.Markdown(card_markdown(run, metrics))
            if curves:
                gr.Image(str(curves), label="training curves", interactive=False)
            else:
                gr.Markdown("*No curves.png in this run.*")
    return demo
