"""Export a run to ONNX for onnxruntime: ``<run>/onnx/model.onnx`` (+ int8), checked against torch.

Run as ``recipes/export_onnx.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.export_onnx``.
"""

from __future__ import annotations

import json
import sys

from ..cli import ArgumentParser, command_line
from ..serving.onnx_export import DEFAULT_OPSET, export_onnx


def main(argv: list[str] | None = None) -> dict:
    """Export the run; print and return the export record (``onnx/export.json``)."""
    parser = ArgumentParser(description="Export a saved hf_spam run to ONNX (onnxruntime serves it).")
    parser.add_argument("--run", required=True, help="a local run folder (an adapter run is merged first)")
    parser.add_argument("--quantize", choices=["int8"], help="also write onnxruntime's dynamic int8 model")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    args = parser.parse_args(argv)
    record = export_onnx(args.run, quantize=args.quantize == "int8", opset=args.opset)
    print(json.dumps(record))
    return record


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
