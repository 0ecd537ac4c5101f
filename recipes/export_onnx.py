"""Export a run to ONNX and serve it with onnxruntime.

    python recipes/export_onnx.py --run outputs/<run>                  # outputs/<run>/onnx/model.onnx
    python recipes/export_onnx.py --run outputs/<run> --quantize int8  # + onnx/model_quantized.onnx
    python recipes/predict.py --run outputs/<run> --backend onnxruntime [--quantize int8] "text"

The model the Predictor serves in float32 (a LoRA run merged into its base) is traced with
torch.onnx.export; onnxruntime's logits are checked against torch's (at most 1e-4 apart, else an error)
on other batch shapes and paddings. onnx/export.json records the check, the opset and the versions.
"""

import sys

from hf_spam.commands.export_onnx import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
