"""One process of tests/test_sharding.py: real FSDP2 (``torch.distributed.fsdp.fully_shard``) on CPUs, gloo.

accelerate refuses FSDP without a GPU, but torch's FSDP2 shards on a CPU device mesh; this runs our side of
an FSDP run on it: blocks sharded by class (:func:`hf_spam.training.sharding.block_class_names`), activation
checkpointing inside the sharded blocks, the best-weights round trip and the final gather into a plain
model saved as today. Each case compares with the same model unsharded; the results go to
``OUT/rank<R>.json``. Run as ``python -m torch.distributed.run --nproc_per_node 2 sharding_worker.py OUT``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from hf_spam import GPT2Config
from hf_spam.models.adapters import AdapterArguments, apply_adapter
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.gradient_checkpointing import enable_gradient_checkpointing, is_gradient_checkpointing
from hf_spam.models.trainable import set_trainable
from hf_spam.training.sharding import (
    block_class_names,
    gather_model,
    is_sharded,
    load_trainable_state_dict,
    meta_copy,
    trainable_state_dict,
)

VOCAB = 64


def our_gpt2() -> torch.nn.Module:
    config = GPT2Config(vocab_size=VOCAB, context_length=32, emb_dim=32, n_layers=3, n_heads=2, dropout=0.1)
    model = GPT2Classifier(config, num_labels=2)
    set_trainable(model, "all")
    return model


def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=VOCAB - 1)  # fmt: skip
    model = LlamaForSequenceClassification(config)
    set_trainable(model, "last_block")
    return model


def gpt2_lora() -> torch.nn.Module:
    return apply_adapter(our_gpt2(), "lora", AdapterArguments(lora_r=4, lora_alpha=8))


CASES = {"gpt2_all": our_gpt2, "llama_last_block": tiny_llama, "gpt2_lora": gpt2_lora}


def shard(model: torch.nn.Module, mesh) -> list[str]:
    """FSDP2 as accelerate applies it with transformer-based wrapping: each block, then the root."""
    names = block_class_names(model)
    for module in list(model.modules()):
        if type(module).__name__ in names:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return names


def whole(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def train_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], optimizer) -> tuple[float, dict]:
    torch.manual_seed(1)  # the same dropout masks for the sharded model and its reference
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.float(), batch["labels"])
    loss.backward()
    grads = {n: whole(p.grad).detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    optimizer.zero_grad()
    return loss.item(), grads


def run_case(name: str, mesh, out: Path, rank: int) -> dict:
    torch.manual_seed(0)
    reference = CASES[name]()
    model = copy.deepcopy(reference)
    enable_gradient_checkpointing(model)
    skeleton = meta_copy(model)
    wrapped = shard(model, mesh)
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB - 1, (4, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding on one row, with the pad (= end-of-text) id as transformers' GPT-2 pools
    ids[1, 9:] = VOCAB - 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}
    result: dict = {
        "wrapped": wrapped,
        "sharded": is_sharded(model),
        "checkpointing": is_gradient_checkpointing(model),
    }
    optimizers = [torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
                  for m in (reference, model)]  # fmt: skip
    reference.train()
    model.train()
    ref_loss, ref_grads = train_step(reference, batch, optimizers[0])
    loss, grads = train_step(model, batch, optimizers[1])
    result["loss_diff"] = abs(ref_loss - loss)
    result["same_grad_names"] = sorted(ref_grads) == sorted(grads)
    result["grad_diff"] = max((ref_grads[n] - grads[n]).abs().max().item() for n in ref_grads)
    # the best weights: whole trained tensors on the main process, then loaded back into the shards
    best = trainable_state_dict(model)
    trained = {n: p.detach() for n, p in reference.named_parameters() if p.requires_grad}
    if rank == 0:
        result["best_names"] = sorted(best) == sorted(trained)
        result["best_diff"] = max((best[n] - trained[n]).abs().max().item() for n in trained)
    else:
        result["best_empty_elsewhere"] = best == {}
    halved = {n: t / 2 for n, t in trained.items()}
    load_trainable_state_dict(model, halved)
    params = {n: whole(p).detach() for n, p in model.named_parameters() if p.requires_grad}
    result["loaded_diff"] = max((params[n] - halved[n]).abs().max().item() for n in halved)
    load_trainable_state_dict(model, {n: t.clone() for n, t in trained.items()})
    # the final model, gathered whole into the skeleton on the main process: the reference's logits
    model.eval()
    reference.eval()
    gathered = gather_model(model, skeleton, rank == 0)
    with torch.no_grad():
        sharded_logits = model(input_ids=ids, attention_mask=mask).logits
        ref_logits = reference(input_ids=ids, attention_mask=mask).logits
    result["sharded_logits_diff"] = (sharded_logits - ref_logits).abs().max().item()
    if rank == 0:
        with torch.no_grad():
            logits = gathered(input_ids=ids, attention_mask=mask).logits
        result["gathered_is_plain"] = not is_sharded(gathered) and not any(
            p.is_meta for p in gathered.parameters()
        )
        result["gathered_logits_diff"] = (logits - ref_logits).abs().max().item()
        result["saved_logits_diff"] = saved_logits_diff(name, gathered, out, ids, mask, ref_logits)
    else:
        result["gathered_elsewhere"] = gathered is None
    return result


def saved_logits_diff(name: str, gathered, out: Path, ids, mask, ref_logits) -> float:
    """Save the gathered model as a run does; load it back with plain transformers (or peft)."""
    from transformers import AutoModelForSequenceClassification

    folder = out / name
    gathered.save_pretrained(folder)
    if name == "gpt2_lora":
        from peft import PeftModel

        torch.manual_seed(0)
        base = our_gpt2()  # the same random base (seed 0), as lora_base.json rebuilds it
        loaded = PeftModel.from_pretrained(base, folder)
    else:
        loaded = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        logits = loaded.eval()(input_ids=ids, attention_mask=mask).logits
    return (logits - ref_logits).abs().max().item()


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    results = {name: run_case(name, mesh, out, rank) for name in CASES}
    (out / f"rank{rank}.json").write_text(json.dumps(results, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
