"""What turns a padded batch of token ids into logits: the run's torch model prepared for inference, or an
onnxruntime session on its export.

Preparing the torch model (:func:`prepare_torch_model`):

- an adapter that can merge (LoRA, (IA)³: any peft method with ``merge_and_unload``) is merged into its base
  in memory (:func:`merge_adapter`): no extra matmuls per layer; the run folder is not touched. Prompt
  learning adapters (prompt, P-tuning, prefix) cannot merge and are served as they are;
- ``quantize="int8"`` (CPU): torch's dynamic int8 quantisation of every ``nn.Linear``
  (``torch.ao.quantization.quantize_dynamic``; transformers' GPT-2 ``Conv1D`` layers are turned into
  ``nn.Linear`` first, so they are quantised too);
- ``dtype`` bfloat16 / float16: the weights cast, for a GPU.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .arguments import DType, Quantize

logger = logging.getLogger(__name__)


def merge_adapter(model: nn.Module) -> nn.Module:
    """``model`` with its peft adapter merged into the base weights (``merge_and_unload``), in memory.

    A model that is not a ``peft.PeftModel`` is returned as it is; so is one whose adapter cannot merge
    (prompt learning methods), with a log line saying so.
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    config = model.peft_config[model.active_adapter]
    method = getattr(config.peft_type, "value", config.peft_type)
    if config.is_prompt_learning:
        logger.info("%s adapter: prompt learning cannot merge; served as a PeftModel", method)
        return model
    merged = model.merge_and_unload()
    logger.info("%s adapter merged into its base in memory (the run folder is unchanged)", method)
    return merged.eval()


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace each transformers ``Conv1D`` (weights stored ``(in, out)``) by the equivalent ``nn.Linear``, in
    place; returns ``model``."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Conv1D):
                linear = nn.Linear(child.weight.shape[0], child.nf, device=child.weight.device,
                                   dtype=child.weight.dtype)  # fmt: skip
                with torch.no_grad():
                    linear.weight.copy_(child.weight.t())
                    linear.bias.copy_(child.bias)
                setattr(module, child_name, linear)
                logger.debug("%s.%s: Conv1D -> nn.Linear", name, child_name)
    return model


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch), in
    place: ``torch.ao.quantization.quantize_dynamic``. CPU only."""
    from torch.ao.quantization import quantize_dynamic

    conv1d_to_linear(model)
    linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    logger.info("int8: %d Linear layers quantised (dynamic, engine %s)", linear,
                torch.backends.quantized.engine)  # fmt: skip
    return quantized


def check_device(device: torch.device, quantize: Quantize = "none", dtype: DType = "float32") -> None:
    """A ValueError naming the flag when ``quantize`` or ``dtype`` does not run on ``device``."""
    if quantize == "int8" and device.type != "cpu":
        raise ValueError(f"--quantize int8 is torch's CPU quantisation; use --device cpu (not {device})")
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("--dtype float16 is for a GPU; on a CPU use --quantize int8 (or --dtype bfloat16)")


def prepare_torch_model(
    model: nn.Module, device: torch.device, quantize: Quantize = "none", dtype: DType = "float32"
) -> nn.Module:
    """The loaded classifier ready to predict on ``device``: adapter merged, quantised or cast, eval mode."""
    check_device(device, quantize, dtype)
    model = merge_adapter(model)
    if quantize == "int8":
        return quantize_int8(model.float().eval())
    return model.to(device=device, dtype=getattr(torch, dtype)).eval()


class TorchBackend:
    """Logits from a torch module: ``logits(input_ids, attention_mask) -> (B, num_labels)`` float32 on CPU."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model's class logits for one padded batch."""
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
        return out.logits.float().cpu()


class OnnxBackend:
    """Logits from an onnxruntime session on an exported ``model.onnx`` (inputs ``input_ids`` and
    ``attention_mask``, output ``logits``); as many intra-op threads as torch uses."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise ValueError('--backend onnxruntime needs onnxruntime: pip install -e ".[onnx]"') from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        logger.info("onnxruntime %s: %s (%d threads)", ort.__version__, path, options.intra_op_num_threads)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The exported model's class logits for one padded batch."""
        feeds: dict[str, Any] = {
            "input_ids": input_ids.cpu().numpy(),
            "attention_mask": attention_mask.cpu().numpy(),
        }
        (logits,) = self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.inputs})
        return torch.from_numpy(logits).float()
