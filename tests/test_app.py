"""The gradio app of a tiny trained run, through gradio_client and through a real headless chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import recipe

gr = pytest.importorskip("gradio", reason='the app tests need gradio: pip install -e ".[app]"')
from accelerate.state import AcceleratorState  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
REPO = Path(__file__).resolve().parents[1]
SPAM = "WINNER!! You have won a free prize, txt CLAIM to 80086 now to claim your mobile"
HAM = "ok i am on my way home, see you in a bit"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def run_dir(tiny_bert_dir, sms_file, tmp_path_factory) -> Path:
    """A tiny BERT fine-tuned for a few seconds on real SMS data, calibrated, with its operating point."""
    out = tmp_path_factory.mktemp("app_runs")
    recipe("bert_classifier").main([
        "--model", str(tiny_bert_dir), "--data_source", str(sms_file), "--output_dir", str(out),
        "--run_name", "tiny", "--max_train_samples", "96", "--max_eval_samples", "40", "--num_epochs", "2",
        "--learning_rate", "3e-3", "--batch_size", "16", "--eval_every", "0", "--calibrate", "temperature",
    ])  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)
    return out / "tiny"


@pytest.fixture(scope="module")
def predictor(run_dir):
    from hf_spam.serving.predict import Predictor

    return Predictor(run_dir, device="cpu")


@pytest.fixture
def app_url(run_dir, predictor):
    from hf_spam.serving.app import build_app

    demo = build_app(run_dir, predictor=predictor)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


def test_classify_endpoint_gives_predictors_labels_and_probabilities(app_url, predictor, run_dir):
    client = Client(app_url, verbose=False)
    threshold = json.loads((run_dir / "operating_point.json").read_text())["threshold"]
    assert predictor.threshold == threshold
    spam, ham = (p["probabilities"]["spam"] for p in predictor([SPAM, HAM]))
    assert spam > ham  # the tiny run learned that much
    # at the run's threshold, and at one between the two texts' probabilities (where they must differ)
    for value in (threshold, (spam + ham) / 2):
        expected = predictor([SPAM, HAM], threshold=value)
        for text, want in zip([SPAM, HAM], expected, strict=True):
            label, probabilities, details = client.predict(text, value, api_name="/classify")
            assert label == want["label"]
            got = {c["label"]: c["confidence"] for c in probabilities["confidences"]}
            assert got == pytest.approx(want["probabilities"], abs=1e-6)
            assert f"threshold {value:.4f}" in details
    assert [e["label"] for e in expected] == ["spam", "ham"]


def test_batch_endpoint_returns_one_row_per_input_line(app_url, predictor, tmp_path):
    client = Client(app_url, verbose=False)
    lines = [SPAM, HAM, "free entry to win cash", "call me when you get this", "urgent! claim now"]
    txt = tmp_path / "messages.txt"
    txt.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")  # a blank line is no text
    table, csv_file, summary = client.predict(handle_file(str(txt)), 0.5, api_name="/batch")
    assert len(table["data"]) == len(lines)
    rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
    assert [r["text"] for r in rows] == lines
    assert [r["predicted"] for r in rows] == [p["label"] for p in predictor(lines, threshold=0.5)]
    downloaded = Path(csv_file).read_text().splitlines()
    assert downloaded[0].startswith("text,predicted,p(ham),p(spam)") and len(downloaded) == len(lines) + 1
    assert summary.startswith("5 texts")

    labelled = tmp_path / "labelled.csv"
    labelled.write_text('label,text\nspam,"WINNER, claim your prize"\nham,see you at 6\n')
    table, _, summary = client.predict(handle_file(str(labelled)), 0.5, api_name="/batch")
    assert len(table["data"]) == 2 and "true_label" in table["headers"]
    assert "accuracy" in summary and "/2 =" in summary


def test_run_without_examples_or_card_files_still_starts(run_dir, predictor, tmp_path, caplog):
    from hf_spam.serving.app import build_app

    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    for name in ("examples.json", "metrics.json", "curves.png"):
        (bare / name).unlink()
    demo = build_app(bare, predictor=predictor)
    texts = json.dumps(demo.config)
    assert "no examples.json" in texts and "has no metrics.json" in texts and "No curves.png" in texts
    assert "has no examples.json" in caplog.text


def test_only_the_app_module_imports_gradio():
    importers = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "hf_spam").rglob("*.py")
        if "import gradio" in path.read_text() or "from gradio" in path.read_text()
    )
    assert importers == ["hf_spam/serving/app.py"]


def test_card_shows_the_metrics_at_the_threshold(run_dir):
    from hf_spam.serving.app import card_markdown

    metrics = json.loads((run_dir / "metrics.json").read_text())
    card = card_markdown(str(run_dir), metrics)
    at = metrics["operating_point"]["at_threshold"]["test"]
    assert f"{at['f1']:.4f}" in card and f"| true 1 | {at['confusion_matrix'][1][0]} |" in card


@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="no chromium: apt-get install chromium chromium-driver (Debian) for the real-browser test",
)
def test_real_browser_types_a_message_and_reads_the_label(app_url, predictor, tmp_path):
    pytest.importorskip("selenium", reason="pip install selenium (in the dev extra)")
    shot = tmp_path / "app.png"
    label = recipe("app_screenshot").classify_in_browser(app_url, SPAM, shot)
    assert label == predictor([SPAM])[0]["label"]  # the page's slider starts at the run's threshold
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
