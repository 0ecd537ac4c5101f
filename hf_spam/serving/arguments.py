"""How a run is served: the flags of ``recipes/predict.py``, the app and ``bench/predict.py``.

:class:`ServingArguments` holds every choice :class:`~hf_spam.serving.predict.Predictor` takes besides the
run: the backend (torch, or onnxruntime on an exported ``onnx/model.onnx``), int8 quantisation, the dtype
on a GPU, the token budget of a batch, and how long texts are read. Each choice list is defined once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

LongText = Literal["truncate", "head_tail", "chunks"]
LONG_TEXT_MODES: tuple[str, ...] = get_args(LongText)
DEFAULT_LONG_TEXT: LongText = "chunks"

Backend = Literal["torch", "onnxruntime"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Quantize = Literal["none", "int8"]
QUANTIZE_CHOICES: tuple[str, ...] = get_args(Quantize)
DType = Literal["float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = get_args(DType)

# padded tokens per batch (rows x longest row): large enough to amortise each forward call on a CPU, small
# enough that 512-token windows still come 8 to a batch
DEFAULT_MAX_BATCH_TOKENS = 4096


@dataclass
class ServingArguments:
    """How a saved run predicts: backend, quantisation, dtype, batching and long texts."""

    backend: Backend = field(
        default="torch",
        metadata={
            "help": "torch (the run's model, adapters merged in memory) or onnxruntime (the run's "
            "onnx/model.onnx, written by recipes/export_onnx.py)"
        },
    )
    quantize: Quantize = field(
        default="none",
        metadata={
            "help": "int8: dynamic int8 quantisation of the Linear layers (CPU; torch's quantize_dynamic, or "
            "onnx/model_quantized.onnx with --backend onnxruntime)"
        },
    )
    dtype: DType = field(
        default="float32", metadata={"help": "weights and activations on a GPU: bfloat16 or float16"}
    )
    max_batch_tokens: int = field(
        default=DEFAULT_MAX_BATCH_TOKENS,
        metadata={
            "help": "windows are sorted by length and batched up to this many padded tokens (rows x longest)"
        },
    )
    long_text: LongText = field(
        default=DEFAULT_LONG_TEXT,
        metadata={"help": "texts longer than the context: chunks (mean of the windows), head_tail, truncate"},
    )
    max_length: int | None = field(
        default=None, metadata={"help": "tokens per window (default: the model's)"}
    )
    threshold: float | None = field(
        default=None, metadata={"help": "threshold on p(class 1) (default: the run's operating point)"}
    )
    temperature: float | None = field(
        default=None, metadata={"help": "softmax temperature (default: the run's operating point)"}
    )
    device: str | None = field(
        default=None, metadata={"help": "cpu, cuda, cuda:1 (default: cuda if present)"}
    )

    def __post_init__(self) -> None:
        if self.max_batch_tokens < 1:
            raise ValueError(f"--max_batch_tokens {self.max_batch_tokens}: must be >= 1")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"--max_length {self.max_length}: must be >= 1")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"--threshold {self.threshold}: a probability, in [0, 1]")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"--temperature {self.temperature}: must be > 0")
        if self.quantize == "int8" and self.dtype != "float32":
            raise ValueError(f"--quantize int8 quantises float32 weights; leave out --dtype {self.dtype}")
        if self.backend == "onnxruntime" and self.dtype != "float32":
            raise ValueError(
                f"--backend onnxruntime serves the float32 export (or int8: --quantize int8); "
                f"--dtype {self.dtype} is for the torch backend on a GPU"
            )

    def variant(self) -> str:
        """The serving variant in short: ``torch-float32``, ``torch-int8``, ``onnxruntime-int8``, ..."""
        return f"{self.backend}-{self.quantize if self.quantize != 'none' else self.dtype}"
