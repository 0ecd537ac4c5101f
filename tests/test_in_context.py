"""In-context learning: label-word scores by hand, the prefix cache, calibration, demonstrations, the run.

Two tiny decoders built in-process: a Llama-family model whose tokenizer has a ChatML chat template (the
shape of SmolLM2-Instruct), and our GPT-2 with a plain template. Their weights are re-drawn from N(0, 0.3)
so that log-probabilities differ clearly between tokens and positions (at the default init of std 0.02
every token is about as likely as every other, and a wrong position would hide).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import recipe

from hf_spam.in_context.calibration import CONTENT_FREE, choose_calibration
from hf_spam.in_context.classifier import InContextClassifier, Pool, load_embedder
from hf_spam.in_context.decoder import load_decoder
from hf_spam.in_context.demonstrations import NearestNeighbours, balanced_random, nearest
from hf_spam.in_context.prompts import Prompt, PromptBuilder
from hf_spam.in_context.templates import DEFAULT_TEMPLATES, load_template, render

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TEXTS = [
    "WINNER!! claim your free prize now, txt WIN to 80086",
    "ok see you at 6",
    "URGENT! your mobile number has won £2000, call 09061701461",
    "are you coming to the party tonight?",
    "Free entry in 2 a wkly comp to win FA Cup final tkts",
    "sorry, I'll call later",
]
LABELS = [1, 0, 1, 0, 1, 0]
ID2LABEL = {0: "ham", 1: "spam"}


def redraw(model: torch.nn.Module, std: float = 0.3) -> None:
    """Every weight matrix and embedding from N(0, std); norms and biases kept."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim > 1:
                param.normal_(0.0, std)
            elif "bias" in name:
                param.normal_(0.0, 0.1)


@pytest.fixture(scope="module")
def tiny_llama_dir(gpt2_tokenizer_dir, tmp_path_factory) -> Path:
    """A tiny Llama causal LM with a ChatML chat template (GPT-2's vocabulary plus its two markers)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_spam.data.tokenizer import load_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = load_tokenizer(gpt2_tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    redraw(model)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_gpt2_lm_dir(tmp_path_factory) -> Path:
    """A tiny transformers GPT-2 folder with re-drawn weights (loaded as our GPT-2 by the recipe)."""
    from transformers import GPT2LMHeadModel

    from hf_spam import GPT2Config
    from hf_spam.models.gpt2.weights import config_to_transformers

    path = tmp_path_factory.mktemp("tiny-gpt2-lm")
    config = GPT2Config(emb_dim=32, n_layers=2, n_heads=2, context_length=256, dropout=0.0)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config_to_transformers(config))
    redraw(model)
    model.save_pretrained(path)
    return path


def decoder(kind: str, tiny_llama_dir: Path, tiny_gpt2_lm_dir: Path, gpt2_tokenizer_dir: Path):
    """``(lm, tokenizer)`` of the tiny chat Llama (transformers) or the tiny GPT-2 (ours, exported)."""
    if kind == "chat":
        return load_decoder(
            str(tiny_llama_dir), "transformers", "pretrained", None, 0, device=torch.device("cpu")
        )
    return load_decoder(str(tiny_gpt2_lm_dir), "hf_spam", "pretrained", str(gpt2_tokenizer_dir), 0,
                        device=torch.device("cpu"))  # fmt: skip


@pytest.fixture(scope="module", params=["chat", "plain"])
def lm_and_tokenizer(request, tiny_llama_dir, tiny_gpt2_lm_dir, gpt2_tokenizer_dir):
    lm, tokenizer = decoder(request.param, tiny_llama_dir, tiny_gpt2_lm_dir, gpt2_tokenizer_dir)
    return request.param, lm, tokenizer


def classifier(lm, tokenizer, words=("ham", "spam"), fixed=(0, 1, 2, 3), neighbours=None, batch_size=3):
    template = load_template(None, tokenizer)
    builder = PromptBuilder(template, tokenizer, list(words), 512 if template.kind == "chat" else 256)
    pool = Pool(TEXTS, LABELS, list(range(len(TEXTS))))
    fixed = None if neighbours else list(fixed)
    return InContextClassifier(lm, tokenizer, builder, ID2LABEL, pool, fixed=fixed, neighbours=neighbours,
                               batch_size=batch_size)  # fmt: skip


def by_hand(lm, prompt: Prompt, answer: list[int]) -> float:
    """``sum_j log p(answer[j] | prompt, answer[:j])`` from one forward pass over the whole sequence."""
    ids = [*prompt.prefix, *prompt.body, *answer]
    with torch.no_grad():
        log_probs = torch.log_softmax(lm(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(log_probs[len(prompt) - 1 + j, token].item() for j, token in enumerate(answer))


QUERIES = ["call now to claim your prize", "see you later at home, ok?", "", "hi"]


# -- scoring ---------------------------------------------------------------------------------------------
def test_scores_are_the_label_words_summed_token_log_probs_by_hand(lm_and_tokenizer):
    kind, lm, tokenizer = lm_and_tokenizer
    model = classifier(lm, tokenizer, words=("ham", "spam offer"))  # the second word is several tokens
    assert len(model.builder.answers[1]) >= 2 and model.builder.template.kind == kind
    prompts = model.prompts(QUERIES)
    scores = model.score(prompts)
    expected = torch.tensor(
        [[by_hand(lm, p, a) for a in model.builder.answers] for p in prompts], dtype=torch.float64
    )
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)
    assert scores.std() > 0.5  # the words' scores differ: a wrong position or token would show
    # the prompt is the template's text: the tokens of the rendered prompt, answer appended
    shown = [(TEXTS[j], model.words[LABELS[j]]) for j in model.fixed]
    text = render(model.builder.template, tokenizer, model.words, shown, QUERIES[0])
    assert tokenizer.decode([*prompts[0].prefix, *prompts[0].body]) == text
    assert text.endswith(
        "<|im_start|>assistant\n" if kind == "chat" else "Message: call now to claim your prize\nLabel:"
    )


@pytest.mark.parametrize("demos", ["random", "knn"])
def test_reusing_the_prefix_cache_gives_the_full_prompt_scores(lm_and_tokenizer, demos, tiny_bert_dir):
    _, lm, tokenizer = lm_and_tokenizer
    neighbours = None
    if demos == "knn":
        embedder = load_embedder(str(tiny_bert_dir), lm, tokenizer, 512)
        neighbours = NearestNeighbours(embedder, embedder(TEXTS), k=3)
    model = classifier(lm, tokenizer, words=("ham", "spam offer"), neighbours=neighbours)
    prompts = model.prompts(QUERIES)
    assert len({p.prefix for p in prompts}) == 1 and len(prompts[0].prefix) > 10
    cached = model.score(prompts)
    assert model.stats.prefixes == 1
    tokens_with_cache = model.stats.tokens
    full = model.score(prompts, reuse_prefix=False)
    assert model.stats.tokens - tokens_with_cache > tokens_with_cache  # the full prompts ran more tokens
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    from hf_spam.in_context.scoring import score_prompts

    unsorted = score_prompts(lm, prompts, model.builder.answers, batch_size=1, group_by_length=False)
    torch.testing.assert_close(unsorted, full, rtol=1e-5, atol=1e-5)


def test_one_pass_per_prompt_when_one_answer_starts_another(lm_and_tokenizer):
    _, lm, tokenizer = lm_and_tokenizer
    model = classifier(lm, tokenizer, words=("no", "no way"), batch_size=16)
    short, long = model.builder.answers
    assert len(short) == 1 and long[:1] == short and len(long) == 2
    prompts = model.prompts(QUERIES)
    scores = model.score(prompts)
    assert model.stats.forwards == 2  # the prefix once, then the four bodies + "no" in one batch: both words
    expected = torch.tensor(
        [[by_hand(lm, p, a) for a in (short, long)] for p in prompts], dtype=torch.float64
    )
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


# -- calibration -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("demos", ["random", "knn"])
def test_contextual_calibration_by_hand(lm_and_tokenizer, demos, tiny_bert_dir):
    _, lm, tokenizer = lm_and_tokenizer
    neighbours = None
    if demos == "knn":
        embedder = load_embedder(str(tiny_bert_dir), lm, tokenizer, 512)
        neighbours = NearestNeighbours(embedder, embedder(TEXTS), k=2)
    model = classifier(lm, tokenizer, words=("ham", "spam offer"), neighbours=neighbours)
    answers = model.builder.answers

    def probabilities(text: str, shown: list[int]) -> torch.Tensor:  # label probabilities after these demos
        prompt = model.prompts([text], [shown])[0]
        scores = torch.tensor([by_hand(lm, prompt, a) for a in answers], dtype=torch.float64)
        return scores.exp() / scores.exp().sum()

    raw = model.logits(QUERIES).exp()
    model.calibrated = True
    calibrated = model.logits(QUERIES).exp()
    for query, shown, p_raw, p_cal in zip(QUERIES, model.choose(QUERIES), raw, calibrated, strict=True):
        p = probabilities(query, shown)
        p_cf = torch.stack([probabilities(text, shown) for text in CONTENT_FREE]).mean(0)  # the same prompt
        assert (p_cf - 0.5).abs().max() > 1e-3  # the prompt is biased: calibration changes something
        torch.testing.assert_close(p_raw, p, rtol=1e-5, atol=1e-6)
        w_p = p / p_cf  # W p with W = diag(p_cf)^-1, renormalised
        torch.testing.assert_close(p_cal, w_p / w_p.sum(), rtol=1e-5, atol=1e-6)
    if demos == "random":
        torch.testing.assert_close(model.prior, p_cf, rtol=1e-5, atol=1e-6)  # one prior, kept
    else:
        assert model.prior is None and len(set(map(tuple, model.choose(QUERIES)))) > 1  # one per query


def test_auto_calibration_keeps_what_is_better_on_validation():
    labels = torch.tensor([0, 1, 1, 0])
    raw = torch.tensor([[0.0, -1.0], [0.0, -0.5], [-1.0, 0.0], [0.0, -2.0]]).log_softmax(-1)  # 3 of 4
    better = torch.tensor([[0.0, -1.0], [-0.5, 0.0], [-1.0, 0.0], [0.0, -2.0]]).log_softmax(-1)  # 4 of 4
    assert choose_calibration("auto", raw, better, labels)[0] is True
    assert choose_calibration("auto", better, raw, labels)[0] is False
    assert choose_calibration("on", better, raw, labels)[0] is True
    assert choose_calibration("off", raw, None, labels) == (False, {"mode": "off", "applied": False})
    sharper = raw * 2  # the same accuracy, lower cross-entropy on what it gets right... or not:
    applied, record = choose_calibration("auto", raw, sharper, labels)
    figures = record["validation"]
    assert figures["raw"]["accuracy"] == figures["calibrated"]["accuracy"] == 0.75
    assert applied == (figures["calibrated"]["cross_entropy"] < figures["raw"]["cross_entropy"])


# -- demonstrations --------------------------------------------------------------------------------------
def test_nearest_neighbours_by_hand_on_tiny_embeddings():
    angles = torch.tensor([0.0, 30.0, 90.0, 180.0, 45.0]).deg2rad()
    lengths = torch.tensor([1.0, 5.0, 0.1, 2.0, 3.0])  # cosine similarity ignores the length
    pool_vectors = torch.stack([angles.cos(), angles.sin()], 1) * lengths[:, None]
    queries = torch.stack(
        [torch.tensor([20.0, 100.0]).deg2rad().cos(), torch.tensor([20.0, 100.0]).deg2rad().sin()], 1
    )
    # 20 degrees: 30 (10 away), 0 (20), 45 (25), 90 (70), 180 (160); 100 degrees: 90, 45, 30, 180, 0
    assert nearest(queries, pool_vectors, 5).tolist() == [[1, 0, 4, 2, 3], [2, 4, 1, 3, 0]]
    assert nearest(queries, pool_vectors, 2).tolist() == [[1, 0], [2, 4]]


def test_knn_demonstrations_are_the_true_nearest_neighbours_shown_least_similar_first(
    tiny_bert_dir, lm_and_tokenizer
):
    _, lm, tokenizer = lm_and_tokenizer
    embedder = load_embedder(str(tiny_bert_dir), lm, tokenizer, 512)
    vectors = embedder(TEXTS)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(len(TEXTS)))
    # the embedding of one text alone (no padding) is the mean of its hidden states, normalised
    inputs = embedder.tokenizer([TEXTS[2]], return_tensors="pt")
    with torch.no_grad():
        alone = embedder.model(**inputs).last_hidden_state[0].mean(0)
    torch.testing.assert_close(vectors[2], alone / alone.norm(), rtol=1e-5, atol=1e-5)
    model = classifier(lm, tokenizer, neighbours=NearestNeighbours(embedder, vectors, k=3))
    queries = embedder(QUERIES)
    for query, chosen in zip(queries, model.choose(QUERIES), strict=True):
        similarity = [float(query @ v) for v in vectors]
        ranked = sorted(range(len(TEXTS)), key=lambda j: -similarity[j])
        assert chosen == ranked[:3][::-1]  # the three nearest, the nearest last (next to the query)
    assert model.prompts(QUERIES)[0].demonstrations == 3


def test_balanced_random_demonstrations_are_balanced_seeded_and_vary_with_the_seed():
    labels = [0] * 30 + [1] * 10 + [2] * 5
    picked = balanced_random(labels, 8, seed=3)
    assert len(set(picked)) == 8 and picked == balanced_random(labels, 8, seed=3)
    counts = sorted(sum(labels[i] == c for i in picked) for c in range(3))
    assert counts == [2, 3, 3]  # 8 = 2 + 3 + 3: as even as 8 allows
    assert balanced_random(labels, 8, seed=4) != picked
    few = balanced_random([0] * 20 + [1] * 2, 10, seed=0)  # class 1 has 2 rows: class 0 fills in
    assert sum(i >= 20 for i in few) == 2 and len(set(few)) == 10
    assert sorted(balanced_random([0, 1, 1], 5, seed=0)) == [0, 1, 2]  # fewer rows than k: all of them


# -- prompts: templates, trimming, errors ----------------------------------------------------------------
def test_prompts_are_tokenised_whole_and_split_after_the_shared_prefix(lm_and_tokenizer):
    kind, _, tokenizer = lm_and_tokenizer
    builder = PromptBuilder(load_template(None, tokenizer), tokenizer, ["ham", "spam"], 512)
    shown = [("hello there", "ham"), ("win cash", "spam")]
    prefix = builder.prefix(tuple(shown))
    text = tokenizer.decode(prefix)
    assert builder.render(shown, "anything").startswith(text) and text.endswith("Message:")
    assert "win cash" in text and "anything" not in text
    instruction = tokenizer.decode(
        builder.prefix(None)
    )  # kNN: demonstrations vary, the instruction is shared
    assert "hello" not in instruction and "Classify" in instruction
    for query in ("a query", "", "\n\nstarts with newlines", ":-) a smile"):
        prompt = builder.prompt(shown, query, fixed=True)
        whole = tuple(builder.bos + builder.encode(builder.render(shown, query)))
        assert prompt.prefix + prompt.body == whole  # caching never changes a token
        assert prompt.prefix in ((), prefix)
    assert builder.prompt(shown, "a query", fixed=True).prefix == prefix
    if kind == "plain":
        assert builder.render(shown, "q") == (
            "Classify each message as ham or spam.\n\nMessage: hello there\nLabel: ham\n\n"
            "Message: win cash\nLabel: spam\n\nMessage: q\nLabel:"
        )


def test_a_prompt_too_long_loses_demonstrations_then_text(lm_and_tokenizer):
    _, _, tokenizer = lm_and_tokenizer
    template = load_template(None, tokenizer)
    long_demo = ("word " * 30, "ham")
    roomy = PromptBuilder(template, tokenizer, ["ham", "spam"], 10_000)
    full = roomy.prompt([long_demo] * 3, "short query", fixed=True)
    limit = len(full) - 20  # one demonstration too many
    builder = PromptBuilder(template, tokenizer, ["ham", "spam"], limit)
    prompt = builder.prompt([long_demo] * 3, "short query", fixed=True)
    assert (prompt.demonstrations, prompt.dropped, prompt.truncated) == (2, 1, False) and len(prompt) <= limit
    tight = PromptBuilder(template, tokenizer, ["ham", "spam"], len(roomy.prompt([], "x", fixed=True)) + 10)
    cut = tight.prompt([long_demo] * 3, "a very long query " * 20, fixed=True)
    assert (cut.demonstrations, cut.dropped, cut.truncated) == (0, 3, True) and len(cut) <= tight.max_tokens
    with pytest.raises(ValueError, match="without demonstrations or text has"):
        PromptBuilder(template, tokenizer, ["ham", "spam"], 5).prompt([], "a query", fixed=True)


def test_label_word_and_template_mistakes_are_one_line_errors(tmp_path, gpt2_tokenizer):
    from hf_spam.in_context.arguments import InContextArguments, parse_label_words
    from hf_spam.in_context.run import label_words

    assert parse_label_words(["ham=ham", "spam = junk mail"]) == {"ham": "ham", "spam": "junk mail"}
    with pytest.raises(ValueError, match="--label_words 'spam': expected class=word"):
        InContextArguments(label_words=["spam"])
    with pytest.raises(ValueError, match=r"no class \['spma'\]; missing \['spam'\]"):
        label_words(["ham=ham", "spma=spam"], ID2LABEL)
    assert label_words(None, ID2LABEL) == ["ham", "spam"]
    with pytest.raises(ValueError, match="--demos knn picks neighbours"):
        InContextArguments(demos="knn", k=0)
    with pytest.raises(FileNotFoundError, match=r"--template nowhere\.yaml: no such file"):
        InContextArguments(template="nowhere.yaml")
    bad = tmp_path / "t.yaml"
    for content, message in [
        ({"query": "no placeholder"}, r"query 'no placeholder' has no \{text\}"),
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"kind": "chat"}, "the tokenizer has no chat template"),
    ]:
        bad.write_text(yaml.safe_dump(content))
        with pytest.raises(ValueError, match=message):
            load_template(bad, gpt2_tokenizer)
    bad.write_text(yaml.safe_dump({"instruction": "Spam or not?\n", "answer": " {label}!"}))
    template = load_template(bad, gpt2_tokenizer)
    assert template.kind == "plain" and template.query == DEFAULT_TEMPLATES["plain"].query
    with pytest.raises(ValueError, match="two classes have the same tokens"):
        PromptBuilder(template, gpt2_tokenizer, ["spam", "spam"], 100)


def test_a_text_pair_reaches_the_prompt_on_its_own_line():
    from datasets import Dataset

    from hf_spam.in_context.run import split_texts

    pairs = Dataset.from_dict({"text": ["a b", "c"], "text_pair": ["d", "e f"], "label": [0, 1]})
    assert split_texts(pairs) == ["a b\nd", "c\ne f"]
    assert split_texts(Dataset.from_dict({"text": ["x"], "label": [0]})) == ["x"]


# -- the recipe, predict.py, the app, compare.py ---------------------------------------------------------
def read_probabilities(path: Path) -> torch.Tensor:
    with path.open() as f:
        return torch.tensor([[float(r["prob_0"]), float(r["prob_1"])] for r in csv.DictReader(f)])


def test_in_context_run_then_predict_and_the_app(
    tiny_gpt2_lm_dir, gpt2_tokenizer_dir, sms_file, tmp_path, capsys
):
    from hf_spam.data import DataArguments, load_splits
    from hf_spam.serving.app import card_markdown, classify
    from hf_spam.serving.predict import Predictor

    out = tmp_path / "runs"
    argv = ["--implementation", "hf_spam", "--model", str(tiny_gpt2_lm_dir),
            "--tokenizer", str(gpt2_tokenizer_dir), "--data_source", str(sms_file),
            "--max_train_samples", "20", "--max_eval_samples", "16", "--k", "4", "--output_dir", str(out),
            "--run_name", "icl", "--calibrate", "on", "--batch_size", "8"]  # fmt: skip
    metrics = recipe("in_context").main(argv)
    run = out / "icl"
    files = {"metrics.json", "args.json", "test_predictions.csv", "operating_point.json", "examples.json"}
    assert {p.name for p in run.iterdir()} == files | {"in_context.json"}
    assert metrics["recipe"] == "in_context"
    assert metrics["split_sizes"] == {"train": 20, "validation": 16, "test": 16}  # the labelled pool read too
    assert metrics["parameters"]["trainable"] == 0 and metrics["training"]["examples"] == 4
    details = metrics["training"]["details"]
    assert details["calibration"]["applied"] is True and details["scoring"]["prefixes_cached"] == 1
    assert details["prompts_trimmed"] == 0 and details["template_kind"] == "plain"
    saved = json.loads((run / "in_context.json").read_text())
    splits, _ = load_splits(
        DataArguments(data_source=str(sms_file), max_train_samples=20, max_eval_samples=16), 123
    )
    ids = balanced_random(splits["train"]["label"], 4, seed=123)
    assert [d["id"] for d in saved["demonstrations"]] == details["demonstration_ids"] == ids
    assert [d["text"] for d in saved["demonstrations"]] == [splits["train"]["text"][i] for i in ids]
    assert saved["label_words"] == {"ham": "ham", "spam": "spam"} and "{text}" in saved["prompt"]
    # the Predictor rebuilds the classifier from the run folder: the run's test probabilities again
    predictor = Predictor(run, device="cpu", temperature=1.0)
    test = splits["test"]["text"]
    saved_probabilities = read_probabilities(run / "test_predictions.csv")
    torch.testing.assert_close(predictor.probabilities(test), saved_probabilities, rtol=1e-4, atol=1e-5)
    result = predictor(["WINNER!! claim your prize"])[0]
    assert result["long_text"] == "in_context" and result["demonstrations"] == 4 and result["tokens"] > 20
    point = json.loads((run / "operating_point.json").read_text())
    assert (
        result["threshold"] == point["threshold"]
        and Predictor(run, device="cpu").temperature == point["temperature"]
    )
    # predict.py and the app read it as any run
    recipe("predict").main(["--run", str(run), "free prize, call now"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["label"] in ("ham", "spam") and set(printed["probabilities"]) == {"ham", "spam"}
    label, probabilities, how = classify(predictor, "free prize, call now", None)
    assert (
        label in ("ham", "spam")
        and set(probabilities) == {"ham", "spam"}
        and "tokens, long_text=in_context" in how
    )
    assert "in_context" in card_markdown(str(run), metrics)
    with pytest.raises(FileExistsError, match="--overwrite_output_dir"):
        recipe("in_context").main(argv)


@pytest.mark.slow
def test_a_knn_row_of_a_study_with_a_chat_model(tiny_llama_dir, tiny_bert_dir, sms_file, tmp_path):
    from hf_spam.serving.predict import Predictor

    study = tmp_path / "s.yaml"
    knn = {"model": str(tiny_llama_dir), "demos": "knn", "k": 2, "embedding_model": str(tiny_bert_dir),
           "label_words": ["ham=fine", "spam=junk mail"]}  # fmt: skip
    study.write_text(yaml.safe_dump({
        "name": "s", "seeds": [1], "shared": {"max_train_samples": 12, "max_eval_samples": 8},
        "rows": [{"name": "knn", "recipe": "in_context", "args": knn}],
    }))  # fmt: skip
    out = tmp_path / "st"
    report = recipe("compare").main([str(study), "--data_source", str(sms_file), "--output_dir", str(out),
                                     "--resamples", "100"])  # fmt: skip
    assert report["counts"]["ran"] == 1 and report["counts"]["failed"] == 0
    markdown = (out / "s" / "report.md").read_text()
    assert "| knn |" in markdown and "(2-shot knn" in markdown and "label words" in markdown
    run = out / "s" / "knn" / "seed1"
    details = json.loads((run / "metrics.json").read_text())["training"]["details"]
    assert (
        details["demos"] == "knn" and details["template_kind"] == "chat" and details["answer_tokens"][1] >= 2
    )
    assert (run / "in_context_index.safetensors").is_file()
    predictor = Predictor(run, device="cpu", temperature=1.0)
    test = json.loads((run / "examples.json").read_text())["examples"]
    assert predictor.probabilities([e["text"] for e in test]).shape == (len(test), 2)
    assert predictor.scorer.calibrated == details["calibration"]["applied"]
    assert predictor.scorer.prior is None  # kNN: the content-free prior is one per query's prompt
