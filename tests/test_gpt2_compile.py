"""Our GPT-2 under torch.compile (inductor), as accelerate's dynamo plugin compiles it: same numbers as eager.

One compilation with dynamic shapes serves every batch size and padded length (dynamic padding), checked
with ``torch.compiler.set_stance("fail_on_recompile")``.
"""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import TorchDynamoPlugin

from hf_spam import GPT2Config
from hf_spam.models.classifier import GPT2Classifier

pytestmark = pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")

CONFIG = GPT2Config(vocab_size=64, context_length=32, emb_dim=16, n_layers=2, n_heads=2, dropout=0.0)
TOL = {"atol": 1e-5, "rtol": 1e-5}


def step(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    logits = model(ids, attention_mask=mask).logits
    torch.nn.functional.cross_entropy(logits, torch.arange(len(ids)) % 2).backward()
    grads = {name.removeprefix("_orig_mod."): p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return logits.detach(), grads


def batch(rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, 63, (rows, width), generator=torch.Generator().manual_seed(width))
    mask = torch.ones_like(ids)
    mask[1:, width // 2 :] = 0  # right padding on all rows but the first
    return ids.masked_fill(mask == 0, 63), mask


@pytest.mark.slow
def test_compiled_classifier_step_matches_eager_without_recompiling():
    torch.manual_seed(0)
    eager = GPT2Classifier(CONFIG, num_labels=2).train()
    compiled = GPT2Classifier(CONFIG, num_labels=2).train()
    compiled.load_state_dict(eager.state_dict())
    plugin = TorchDynamoPlugin(backend="inductor", dynamic=True)
    compiled = Accelerator(cpu=True, dynamo_plugin=plugin).prepare(compiled)
    assert compiled is not eager and hasattr(compiled, "_orig_mod")  # accelerate compiled it
    torch._dynamo.reset()
    try:
        for i, (rows, width) in enumerate([(3, 7), (4, 11), (2, 5)]):
            ids, mask = batch(rows, width)
            with torch.compiler.set_stance("fail_on_recompile" if i else "default"):
                got_logits, got_grads = step(compiled, ids, mask)
            logits, grads = step(eager, ids, mask)
            torch.testing.assert_close(got_logits, logits, **TOL)
            assert got_grads.keys() == grads.keys()
            for name, grad in grads.items():
                torch.testing.assert_close(got_grads[name], grad, **TOL)
    finally:
        torch._dynamo.reset()
