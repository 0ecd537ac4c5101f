"""Export a run to ONNX: ``<run>/onnx/model.onnx`` (+ ``model_quantized.onnx``, int8), checked against torch.

optimum's exporters do not install beside transformers 5, so this is ``torch.onnx.export`` (the TorchScript
tracer) and onnxruntime directly. The traced model is the one :class:`~hf_spam.serving.Predictor` serves in
float32 (an adapter merged into its base), with inputs ``input_ids`` and ``attention_mask`` (batch and
sequence axes dynamic) and output ``logits``. A tracer records one path through Python branches, so the
example batch is padded (every model then takes its masked path, which is right for unpadded batches too);
the export is then run by onnxruntime on other batch shapes, both paddings and a long window, and refused
when its logits differ from torch's by more than :data:`TOLERANCE`. ``export.json`` records how it was made.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..run_folder import (
    EXAMPLES_FILE,
    ONNX_DIR,
    ONNX_EXPORT_FILE,
    ONNX_MODEL,
    ONNX_QUANTIZED,
    is_adapter_run,
    read_json,
    write_json,
)
from .predict import Predictor, context_length

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest |logit difference| allowed between onnxruntime (float32) and torch
DEFAULT_OPSET = 17
PROBES = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward!",
    "Ok lar... Joking wif u oni...",
    "hi",
    "I'll be at the station at 6, see you there. Don't forget the tickets for tomorrow's match",
)
LONG_PROBE_TOKENS = 512  # the longest window checked (a model's full context can be 8k tokens)


class ExportError(UserError, ValueError):
    """The exported model does not reproduce the torch model (the architecture does not trace)."""


class LogitsOnly(nn.Module):
    """``model(input_ids, attention_mask).logits``: the traced function."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_labels)``."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(
    run_dir: str | os.PathLike, quantize: bool = False, opset: int = DEFAULT_OPSET
) -> dict[str, Any]:
    """Write ``<run_dir>/onnx/model.onnx`` (and with ``quantize`` ``model_quantized.onnx``, onnxruntime's
    dynamic int8) and ``export.json``; return that record. Raises :class:`ExportError` when onnxruntime's
    logits differ from torch's by more than :data:`TOLERANCE`."""
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise ValueError('the ONNX export needs onnx and onnxruntime: pip install -e ".[onnx]"') from None
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--run {run_dir}: no such run folder")
    start = time.perf_counter()
    predictor = Predictor(run_dir, device="cpu", long_text="truncate")
    model = LogitsOnly(predictor.model).eval()
    out = run_dir / ONNX_DIR
    out.mkdir(exist_ok=True)
    examples = (read_json(run_dir, EXAMPLES_FILE) or {}).get("examples", [])  # the run's test texts
    texts = list(PROBES) + [e["text"] for e in examples]
    example = pad(predictor, [predictor.windows(t)[0][0] for t in PROBES[:2]])  # two lengths: padded
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches and the legacy exporter
        torch.onnx.export(
            model, (example["input_ids"], example["attention_mask"]), out / ONNX_MODEL, dynamo=False,
            input_names=["input_ids", "attention_mask"], output_names=["logits"], opset_version=opset,
            dynamic_axes=axes,
        )  # fmt: skip
    batches = check_batches(predictor, texts)
    diff = max_difference(predictor, out / ONNX_MODEL, batches)
    if diff > TOLERANCE:
        raise ExportError(
            f"{out / ONNX_MODEL}: onnxruntime's logits differ from torch's by {diff:.2e} > {TOLERANCE:g}; "
            f"{type(predictor.model).__name__} does not export faithfully with the tracer: serve it with "
            "--backend torch"
        )
    record: dict[str, Any] = {
        "run": str(run_dir),
        "model": type(predictor.model).__name__,
        "adapter_merged": is_adapter_run(run_dir),
        "exporter": "torch.onnx.export (TorchScript tracer)",
        "opset": opset,
        "files": {"float32": ONNX_MODEL},
        "id2label": {str(k): v for k, v in predictor.id2label.items()},
        "context_length": context_length(predictor.model),
        "checked": {
            "batches": [list(b["input_ids"].shape) for b in batches],
            "max_abs_logit_difference": diff,
            "tolerance": TOLERANCE,
        },
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    if quantize:
        record["files"]["int8"] = ONNX_QUANTIZED
        record["int8"] = quantize_onnx(predictor, out, batches)
    record["seconds"] = round(time.perf_counter() - start, 2)
    write_json(out / ONNX_EXPORT_FILE, record)
    logger.info("ONNX export: %s (max |logit difference| to torch %.2e)", out / ONNX_MODEL, diff)
    return record


def pad(predictor: Predictor, sequences: list[list[int]]) -> dict[str, torch.Tensor]:
    """A padded batch as the Predictor's tokenizer pads it."""
    return dict(predictor.tokenizer.pad({"input_ids": sequences}, return_tensors="pt"))


def check_batches(predictor: Predictor, texts: list[str]) -> list[dict[str, torch.Tensor]]:
    """Batches unlike the traced one: every text together (padded on the tokenizer's side and the other
    side), one short text alone, and one long window."""
    windows = [predictor.windows(t)[0][0] for t in texts]
    long = (windows[0] * (LONG_PROBE_TOKENS // len(windows[0]) + 1))[
        : min(predictor.max_length, LONG_PROBE_TOKENS)
    ]
    side = predictor.tokenizer.padding_side
    try:
        predictor.tokenizer.padding_side = "left" if side == "right" else "right"
        other_side = pad(predictor, windows)
    finally:
        predictor.tokenizer.padding_side = side
    return [pad(predictor, windows), other_side, pad(predictor, [windows[2]]), pad(predictor, [long])]


def max_difference(predictor: Predictor, path: Path, batches: list[dict[str, torch.Tensor]]) -> float:
    """The largest |logit difference| between onnxruntime on ``path`` and the torch model."""
    from .backends import OnnxBackend

    session = OnnxBackend(path)
    diff = 0.0
    for batch in batches:
        theirs = session.logits(batch["input_ids"], batch["attention_mask"])
        ours = predictor.backend.logits(batch["input_ids"], batch["attention_mask"])
        diff = max(diff, float((theirs - ours).abs().max()))
    return diff


def quantize_onnx(predictor: Predictor, out: Path, batches: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """onnxruntime's dynamic int8 quantisation of ``model.onnx`` (weights int8, activations per batch) to
    ``model_quantized.onnx``; how far its logits and argmax labels are from torch's on the check batches."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .backends import OnnxBackend

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (whose shape inference fails on these models)
    try:
        quantize_dynamic(out / ONNX_MODEL, out / ONNX_QUANTIZED, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    session = OnnxBackend(out / ONNX_QUANTIZED)
    theirs = torch.cat([session.logits(b["input_ids"], b["attention_mask"]) for b in batches])
    ours = torch.cat([predictor.backend.logits(b["input_ids"], b["attention_mask"]) for b in batches])
    return {
        "method": "onnxruntime.quantization.quantize_dynamic (QInt8 weights)",
        "max_abs_logit_difference": float((theirs - ours).abs().max()),
        "argmax_agreement": float((theirs.argmax(-1) == ours.argmax(-1)).float().mean()),
        "bytes": (out / ONNX_QUANTIZED).stat().st_size,
        "float32_bytes": (out / ONNX_MODEL).stat().st_size,
    }
