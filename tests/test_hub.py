"""Publishing to a hub end to end: the real huggingface_hub client against a loopback hub server.

The server (tests/hub_server.py) implements the routes the client really calls; no network is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from hub_server import HubServer
from huggingface_hub import ModelCard, constants

from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.hub import HubError, check_push, push_run, resolve_run
from hf_spam.training.fine_tune import run_classification

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_FAKE0token0for0tests0a7c3e9d15b"  # the server's only valid token: a fake one
USER = "tester"
TEXTS = ["URGENT! You have won a 1 week FREE membership", "I'll be home soon, want anything?"]


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def hub(tmp_path, monkeypatch, online):
    """A hub on a free loopback port, with HF_ENDPOINT, HF_TOKEN and a fresh hub cache pointing at it
    (offline mode off, whatever the shell says)."""
    with HubServer({TOKEN: USER}) as server:
        env = {
            "HF_ENDPOINT": server.url,
            "HF_TOKEN": TOKEN,
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_CACHE": str(tmp_path / "hf_cache"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # huggingface_hub reads these at import time: point the already imported client at the server too
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
        server.env = env
        yield server


def tiny_run_argv(tiny_gpt2_dir: Path, tokenizer_dir: Path, sms_file: Path, output_dir: Path) -> list[str]:
    return [
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(output_dir), "--trainable", "all",
        "--max_train_samples", "32", "--max_eval_samples", "16", "--batch_size", "8", "--num_epochs", "1",
        "--eval_every", "2", "--learning_rate", "1e-3", "--run_name", "tiny",
    ]  # fmt: skip


@pytest.fixture
def train_argv(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path) -> list[str]:
    return tiny_run_argv(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path / "outputs")


def train(argv: list[str]) -> dict:
    return run_classification(*parse_args((ModelArguments, DataArguments, TrainArguments), argv))


@pytest.fixture(scope="module")
def _trained_once(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("trained")
    train(tiny_run_argv(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, output_dir))
    AcceleratorState._reset_state(reset_partial_state=True)
    return output_dir / "tiny"


@pytest.fixture
def trained_run(_trained_once, tmp_path) -> Path:
    """A tiny trained run folder (trained once per module), copied so that each test writes its own card."""
    return Path(shutil.copytree(_trained_once, tmp_path / "run"))


def logits_of(model: torch.nn.Module, tokenizer_dir: Path) -> torch.Tensor:
    from hf_spam.data.tokenizer import load_tokenizer

    batch = load_tokenizer(tokenizer_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def python_block(card_text: str) -> str:
    return re.search(r"```python\n(.*?)```", card_text, re.S).group(1)


def test_recipe_pushes_once_after_training_files_and_card(hub, train_argv, tmp_path):
    metrics = train([*train_argv, "--push_to_hub", "--hub_model_id", "tiny-spam"])
    run_dir = tmp_path / "outputs" / "tiny"
    repo = hub.state.repos[f"{USER}/tiny-spam"]  # a name without namespace goes to the token's user
    assert len(repo.commits) == 2  # the repo's initial commit, then exactly one push
    files = repo.files()
    assert set(files) == {
        ".gitattributes",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "metrics.json",
        "args.json",
        "history.json",
        "curves.png",
        "operating_point.json",
        "examples.json",
    }  # no checkpoints/, no best-weights scratch file
    for name in set(files) - {".gitattributes"}:
        assert files[name] == (run_dir / name).read_bytes(), name
    assert not repo.private

    card = ModelCard(files["README.md"].decode())
    data = card.data.to_dict()
    assert (data["library_name"], data["pipeline_tag"]) == ("transformers", "text-classification")
    assert data["datasets"] == ["ucirvine/sms_spam"] and data["license"] == "apache-2.0"
    assert "base_model" not in data  # random weights: no pretrained model to name
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    saved = json.loads(files["metrics.json"])
    for split in ("test", "validation"):
        for metric in ("accuracy", "f1", "precision", "recall", "roc_auc"):
            assert (
                results[(split, metric)] == saved["splits"][split][metric] == metrics["splits"][split][metric]
            )
    body = card.text
    matrix = saved["splits"]["test"]["confusion_matrix"]
    assert f"| **ham** | {matrix[0][0]} | {matrix[0][1]} |" in body
    assert f"| **spam** | {matrix[1][0]} | {matrix[1][1]} |" in body
    assert "![training and validation loss and accuracy](curves.png)" in body
    assert f"{saved['parameters']['trainable']:,} / {saved['parameters']['total']:,}" in body
    assert "`learning_rate` | `0.001`" in body and "randomly initialised weights" in body
    assert f'pipeline("text-classification", model="{USER}/tiny-spam")' in body


def test_load_by_repo_id_identical_logits_and_card_snippet_runs(hub, trained_run):
    from hf_spam.models.load import load_classifier
    from hf_spam.serving.predict import Predictor

    info = push_run(trained_run, f"{USER}/tiny-spam")
    assert info.oid == hub.state.repos[f"{USER}/tiny-spam"].branches["main"]
    local = logits_of(load_classifier(trained_run), trained_run)
    folder = resolve_run(f"{USER}/tiny-spam")
    assert folder != trained_run and str(folder).startswith(os.environ["HF_HUB_CACHE"])  # the hub cache
    torch.testing.assert_close(logits_of(load_classifier(folder), folder), local, rtol=0, atol=0)
    expected = Predictor(trained_run)(TEXTS)
    assert Predictor(f"{USER}/tiny-spam")(TEXTS) == expected

    env = {**os.environ, **hub.env, "PYTHONPATH": str(REPO)}
    predict = [sys.executable, str(REPO / "recipes" / "predict.py"), "--run", f"{USER}/tiny-spam", *TEXTS]
    out = subprocess.run(predict, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["label"] for line in lines] == [r["label"] for r in expected]
    assert [line["probability"] for line in lines] == pytest.approx(
        [r["probability"] for r in expected], abs=1e-6
    )

    # the card's "how to use" snippet, as written, in a fresh interpreter pointed at the hub
    snippet = python_block((trained_run / "README.md").read_text())
    out = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"'label': '{expected[0]['label']}'" in out.stdout


def test_fake_token_appears_in_no_log_and_no_file(hub, trained_run, tmp_path, caplog, capfd):
    import logging

    caplog.set_level(logging.DEBUG)
    push_run(trained_run, f"{USER}/secret-check", private=True)
    from hf_spam.serving.predict import Predictor

    Predictor(f"{USER}/secret-check")(TEXTS)
    with pytest.raises(HubError) as error:
        check_push(f"someone-else/{USER}")
    assert f"Bearer {TOKEN}" in hub.state.authorizations  # the token was really sent...
    captured = capfd.readouterr()
    assert TOKEN not in caplog.text + captured.out + captured.err + str(error.value)  # ...and never logged
    written = [p for p in (*tmp_path.rglob("*"), *trained_run.rglob("*")) if p.is_file()]
    assert any(p.name == "README.md" for p in written) and any("hf_cache" in str(p) for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_preflight_says_which_check_failed(hub, monkeypatch):
    assert check_push("tiny") == f"{USER}/tiny"
    assert check_push("tiny") == f"{USER}/tiny"  # exists already: fine
    problems = {
        "no token": ({"HF_TOKEN": None}, "tiny", "No Hugging Face token"),
        "bad token": ({"HF_TOKEN": "hf_wrong"}, "tiny", "rejected the token (401"),
        "other namespace": ({}, "someone-else/tiny", "403 Forbidden"),
        "bad id": ({}, "a/b/c", "not a valid repo id"),
        "offline": ({"HF_HUB_OFFLINE": "1"}, "tiny", "offline mode is on"),
        "unreachable": ({"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, "tiny", "cannot be reached"),
    }
    for name, (env, repo_id, message) in problems.items():
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.delenv(key) if value is None else m.setenv(key, value)
            with pytest.raises(HubError, match=re.escape(message)) as error:
                check_push(repo_id)
        text = str(error.value)
        assert "\n" not in text and "../" not in text and TOKEN not in text, name


def test_branch_and_private_repo(hub, trained_run, monkeypatch):
    push_run(trained_run, f"{USER}/private-spam", private=True, revision="v1")
    repo = hub.state.repos[f"{USER}/private-spam"]
    assert repo.private and set(repo.files("main")) == {".gitattributes"}
    assert "model.safetensors" in repo.files("v1")
    with monkeypatch.context() as m:
        m.delenv("HF_TOKEN")
        with pytest.raises(HubError, match="private repo needs HF_TOKEN"):
            resolve_run(f"{USER}/private-spam", revision="v1")
    assert (resolve_run(f"{USER}/private-spam", revision="v1") / "model.safetensors").is_file()


def test_recipe_with_push_to_hub_and_no_endpoint_fails_before_training(train_argv, tmp_path, online):
    argv = [*train_argv, "--push_to_hub", "--hub_model_id", "tiny-spam"]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }
    recipe = [sys.executable, str(REPO / "recipes" / "gpt2_classifier.py"), *argv]
    out = subprocess.run(recipe, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "cannot be reached" in out.stderr.splitlines()[-1]
    assert not (tmp_path / "outputs").exists()  # nothing written: no args.json, no step, no checkpoint
    assert TOKEN not in out.stdout + out.stderr


def test_adapter_push_card_and_load_by_id(hub, tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path):
    from huggingface_hub import HfApi
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from hf_spam.data import load_sms_spam
    from hf_spam.data.tokenizer import load_tokenizer
    from hf_spam.evaluation.metrics import classification_metrics

    HfApi().create_repo(f"{USER}/tiny-gpt2")  # the base model lives on the hub too
    HfApi().upload_folder(repo_id=f"{USER}/tiny-gpt2", folder_path=tiny_gpt2_dir)

    def base() -> torch.nn.Module:
        return AutoModelForSequenceClassification.from_pretrained(
            tiny_gpt2_dir, num_labels=2, pad_token_id=50256
        )

    torch.manual_seed(0)
    config = LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True
    )
    model = get_peft_model(base(), config).eval()
    before = logits_of(model, gpt2_tokenizer_dir)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # as if trained: the adapter now changes the output
    after = logits_of(model, gpt2_tokenizer_dir)
    assert not torch.allclose(before, after)
    run_dir = tmp_path / "lora-run"
    model.peft_config["default"].base_model_name_or_path = f"{USER}/tiny-gpt2"
    model.save_pretrained(run_dir)
    load_tokenizer(gpt2_tokenizer_dir).save_pretrained(run_dir)
    data = load_sms_spam(sms_file)
    rows = data.select([i for c in (0, 1) for i in [j for j, y in enumerate(data["label"]) if y == c][:8]])
    tokenizer = load_tokenizer(gpt2_tokenizer_dir)
    with torch.inference_mode():
        probs = [model(**tokenizer(t, return_tensors="pt")).logits.softmax(-1)[0] for t in rows["text"]]
    test = classification_metrics(torch.stack(probs).numpy(), rows["label"]) | {"n": 16}
    metrics = {
        "run": "lora-run",
        "model": f"{USER}/tiny-gpt2",
        "dataset": "sms_spam",
        "splits": {"test": test},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    push_run(run_dir, f"{USER}/tiny-lora")
    files = hub.state.repos[f"{USER}/tiny-lora"].files()
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "metrics.json"} <= set(files)
    assert "model.safetensors" not in files and "config.json" not in files
    card = ModelCard(files["README.md"].decode())
    assert (card.data.library_name, card.data.base_model) == ("peft", f"{USER}/tiny-gpt2")
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["accuracy"] == test["accuracy"]

    loaded = PeftModel.from_pretrained(base(), resolve_run(f"{USER}/tiny-lora")).eval()
    torch.testing.assert_close(logits_of(loaded, gpt2_tokenizer_dir), after, rtol=0, atol=0)
    env = {**os.environ, **hub.env, "PYTHONPATH": str(REPO)}
    snippet = [sys.executable, "-c", python_block(card.text)]
    out = subprocess.run(snippet, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    with torch.inference_mode():
        first = model(**tokenizer(_first_example(card.text), return_tensors="pt"))
    expected = first.logits.softmax(-1)[0].tolist()
    printed = [float(x) for x in re.findall(r"[-\d.]+(?:e-?\d+)?", out.stdout.split("[[", 1)[1])[:2]]
    assert printed == pytest.approx(expected, abs=1e-4)


def _first_example(card_text: str) -> str:
    return re.search(r"inputs = tokenizer\((['\"])(.*?)\1", python_block(card_text)).group(2)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_files_refuses_a_folder_without_a_model(tmp_path):
    from hf_spam.run_folder import files_to_push

    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(HubError, match="no model to push"):
        files_to_push(tmp_path)


def test_hf_spam_lora_run_pushed_and_loaded_by_id(hub, train_argv, tmp_path):
    """A ``--trainable lora`` run of our GPT-2 (random base, rebuilt from its seed): the adapter, the head
    and lora_base.json are pushed, no full model; loading by repo id gives the run's logits exactly."""
    from hf_spam.models.load import load_classifier

    argv = [arg if arg != "all" else "lora" for arg in train_argv]  # --trainable lora
    train([*argv, "--push_to_hub", "--hub_model_id", "tiny-lora"])
    run_dir = tmp_path / "outputs" / "tiny"
    files = hub.state.repos[f"{USER}/tiny-lora"].files()
    assert {"adapter_config.json", "adapter_model.safetensors", "lora_base.json", "README.md"} <= set(files)
    assert "model.safetensors" not in files
    assert files["adapter_model.safetensors"] == (run_dir / "adapter_model.safetensors").read_bytes()
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "peft"
    assert "from hf_spam.serving import Predictor" in python_block(card.text)

    tokenizer_dir = run_dir  # the run folder holds the tokenizer
    local = logits_of(load_classifier(run_dir), tokenizer_dir)
    by_id = logits_of(load_classifier(resolve_run(f"{USER}/tiny-lora")), tokenizer_dir)
    torch.testing.assert_close(by_id, local, rtol=0, atol=0)


def test_prompt_tuned_adapter_pushed_with_its_hub_base_loads_by_id(hub, tiny_bert_dir, sms_file, tmp_path):
    """A prompt-tuning run from a local base folder, pushed with --base_model: the pushed adapter_config
    names the hub base (the run folder keeps its local path), so peft alone loads it by repo id, and
    hf_spam's Predictor by repo id predicts what the local run predicts."""
    from huggingface_hub import HfApi

    from hf_spam.serving import Predictor

    HfApi().create_repo(f"{USER}/tiny-bert")  # the base model lives on the hub too
    HfApi().upload_folder(repo_id=f"{USER}/tiny-bert", folder_path=tiny_bert_dir)
    train([
        "--model", str(tiny_bert_dir), "--implementation", "transformers", "--trainable", "prompt_tuning",
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--run_name", "prompt",
        "--max_train_samples", "32", "--max_eval_samples", "16", "--batch_size", "8", "--num_epochs", "1",
        "--eval_every", "0",
    ])  # fmt: skip
    run_dir = tmp_path / "prompt"
    push_run(run_dir, f"{USER}/tiny-prompt", base_model=f"{USER}/tiny-bert")
    files = hub.state.repos[f"{USER}/tiny-prompt"].files()
    pushed = json.loads(files["adapter_config.json"])
    assert (pushed["peft_type"], pushed["base_model_name_or_path"]) == ("PROMPT_TUNING", f"{USER}/tiny-bert")
    local_config = json.loads((run_dir / "adapter_config.json").read_text())
    assert local_config["base_model_name_or_path"] == str(tiny_bert_dir.resolve())  # the run keeps its path
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == f"{USER}/tiny-bert" and "prompt-tuning" in card.data.tags
    assert "A prompt-tuning adapter" in card.text

    local = Predictor(run_dir)(TEXTS)
    assert Predictor(f"{USER}/tiny-prompt")(TEXTS) == local
    # peft alone, in a fresh interpreter pointed at the hub (huggingface_hub reads HF_ENDPOINT at import)
    script = (
        "import json, sys, torch\n"
        "from peft import AutoPeftModelForSequenceClassification\n"
        "from transformers import AutoTokenizer\n"
        f"model = AutoPeftModelForSequenceClassification.from_pretrained('{USER}/tiny-prompt').eval()\n"
        f"tokenizer = AutoTokenizer.from_pretrained('{USER}/tiny-prompt')\n"
        "with torch.inference_mode():\n"
        "    rows = [model(**tokenizer(t, return_tensors='pt')).logits.softmax(-1)[0].tolist()\n"
        "            for t in json.loads(sys.argv[1])]\n"
        "print(json.dumps(rows))\n"
    )  # one text at a time: peft's own forward
    env = {**os.environ, **hub.env, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script, json.dumps(TEXTS)], capture_output=True, text=True,
                         env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    for row, expected in zip(json.loads(out.stdout.splitlines()[-1]), local, strict=True):
        assert row == pytest.approx(list(expected["probabilities"].values()), abs=1e-5)
