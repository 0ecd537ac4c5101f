"""A study file: named rows of recipe arguments, shared arguments, seeds and the questions to answer.

```yaml
name: seven_questions            # outputs/<name>/
split_seed: 123                  # every row and seed on this split (default 123, the book's)
seeds: [123, 124, 125]
shared: {data_source: ..., num_epochs: 5}   # every row whose recipe takes the flag
rows:
  - {name: last_token, recipe: gpt2, args: {pooling: last}, note: "the book's head"}
  - {name: first_token, recipe: gpt2, args: {pooling: first}}
questions:
  - {title: "last vs first token", rows: [last_token, first_token]}   # each later row against the first
```

``recipe`` is ``gpt2``, ``bert``, ``frozen_features``, ``tfidf`` (``frozen_features.py --method tfidf
--analyzer best``: word or character n-grams, whichever is better on validation), ``in_context`` -- recipes
of the installed package (:data:`hf_spam.arguments.RECIPES`), run as ``python -m hf_spam.commands.<module>``
-- or the path of a recipe file that declares ``ARGUMENT_GROUPS``. Row arguments must be flags of the
row's recipe; shared arguments and overrides go to every row whose recipe takes them. Precedence, last
wins: the recipe's preset, ``shared``, overrides for every row (``--model``, ``--set flag=value``, flags
after ``--``; they never replace what a row sets in its own ``args``), the row's ``args``, then overrides
aimed at a recipe or row (``--set bert:model=...``, ``--set last_token:learning_rate=1e-4``), which
replace anything.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..arguments import RECIPES, RecipeSpec
from ..errors import StudyError

logger = logging.getLogger(__name__)

DEFAULT_SPLIT_SEED = 123
STUDY_KEYS = {"name", "description", "split_seed", "seeds", "shared", "rows", "questions", "train_sizes"}
ROW_KEYS = {"name", "recipe", "args", "note"}
QUESTION_KEYS = {"title", "rows"}
RUNNER_FLAGS = {  # set by the runner
    "output_dir", "run_name", "seed", "split_seed", "overwrite_output_dir", "resume_from_checkpoint"
}  # fmt: skip
# flags of frozen_features.py that mean nothing to its TF-IDF / bag-of-words methods
BACKBONE_FLAGS = {"model", "implementation", "weights", "tokenizer", "pooling", "batch_size", "dtype"}
BACKBONE_FLAGS |= {"max_length", "padding", "padding_side", "group_by_length"}


@dataclass(frozen=True)
class Recipe:
    """A recipe the study can run: a module of the package (``spec``) or a recipe file (``path``), its
    preset arguments, and the flags it takes."""

    name: str
    spec: RecipeSpec | None = None
    path: Path | None = None
    preset: dict[str, Any] = field(default_factory=dict)
    excluded: frozenset[str] = frozenset()

    @property
    def uses_accelerate(self) -> bool:
        """Whether the recipe runs under ``accelerate launch`` (a recipe file is assumed to)."""
        return self.spec.uses_accelerate if self.spec else True

    @property
    def target(self) -> list[str]:
        """What follows the launcher on the command line: ``-m <module>``, or the recipe file."""
        return ["-m", self.spec.module] if self.spec else [str(self.path)]

    @property
    def all_flags(self) -> frozenset[str]:
        """Every flag the recipe parses: the fields of its argument groups."""
        if self.spec:
            return frozenset(f.name for group in self.spec.groups for f in fields(group))
        return recipe_flags(self.path)

    @property
    def flags(self) -> frozenset[str]:
        """Every flag the recipe parses, less those the runner sets and those it ignores."""
        return self.all_flags - self.excluded - RUNNER_FLAGS


BUILTIN = {
    "gpt2": Recipe("gpt2", RECIPES["gpt2_classifier"]),
    "bert": Recipe("bert", RECIPES["bert_classifier"]),
    "frozen_features": Recipe("frozen_features", RECIPES["frozen_features"]),
    "tfidf": Recipe(
        "tfidf",
        RECIPES["frozen_features"],
        preset={"method": "tfidf", "analyzer": "best"},
        excluded=frozenset(BACKBONE_FLAGS),
    ),
    "in_context": Recipe("in_context", RECIPES["in_context"]),
}


@cache
def recipe_flags(path: Path) -> frozenset[str]:
    """The flags of the recipe file at ``path``: the fields of its ``ARGUMENT_GROUPS`` dataclasses."""
    spec = importlib.util.spec_from_file_location(f"_study_recipe_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise StudyError(f"recipe {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    groups = getattr(module, "ARGUMENT_GROUPS", None)
    if not groups:
        raise StudyError(f"recipe {path}: declares no ARGUMENT_GROUPS (the dataclasses its main parses)")
    return frozenset(f.name for group in groups for f in fields(group))


@dataclass
class Row:
    """One configuration: a recipe and its arguments (``shared`` merged in), run once per seed."""

    name: str
    recipe: Recipe
    args: dict[str, Any]
    note: str = ""
    pinned: frozenset[str] = frozenset()  # flags the row (or its recipe preset) sets itself
    base: str | None = None  # learning curves: the study's row this one runs at ``train_size`` examples
    train_size: int | None = None  # learning curves: labelled training examples (None: all)


@dataclass
class Question:
    """Rows to compare on the same test examples: each later row against the first."""

    title: str
    rows: list[str]

    def pairs(self) -> list[tuple[str, str]]:
        """``(reference, other)`` for every row after the first."""
        return [(self.rows[0], other) for other in self.rows[1:]]


@dataclass
class Study:
    """A validated study file, overrides applied."""

    name: str
    path: Path
    rows: list[Row]
    questions: list[Question]
    seeds: list[int]
    split_seed: int = DEFAULT_SPLIT_SEED
    description: str = ""
    notes: list[str] = field(default_factory=list)  # what the overrides changed, for the report
    train_sizes: list[int | None] = field(default_factory=list)  # learning curves (None: all); see .curves

    def row(self, name: str) -> Row:
        """The row called ``name``."""
        return next(row for row in self.rows if row.name == name)


def _check_keys(where: str, given: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(given))
    if missing:
        raise StudyError(f"{where}: missing key(s) {missing}")


def _recipe(path: Path, where: str, value: Any) -> Recipe:
    if isinstance(value, str) and value in BUILTIN:
        return BUILTIN[value]
    file = Path(str(value))
    if not file.is_absolute():
        file = path.parent / file if (path.parent / file).is_file() else Path.cwd() / file
    if not isinstance(value, str) or not file.is_file():
        raise StudyError(f"{where}: unknown recipe {value!r}; choose {sorted(BUILTIN)} or a recipe file")
    return Recipe(file.stem, path=file.resolve())


def _rows(path: Path, raw: Any, shared: dict[str, Any]) -> list[Row]:
    if not isinstance(raw, list) or not raw:
        raise StudyError(f"{path}: rows: expected a non-empty list of rows")
    rows: list[Row] = []
    for i, item in enumerate(raw):
        where = f"{path}: rows[{i}]"
        if not isinstance(item, dict):
            raise StudyError(f"{where}: expected a mapping with name, recipe, args")
        _check_keys(where, item, ROW_KEYS, {"name", "recipe"})
        name = item["name"]
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise StudyError(f"{where}.name: {name!r} is not a usable folder name")
        if any(row.name == name for row in rows):
            raise StudyError(f"{where}.name: row {name!r} is named twice")
        recipe = _recipe(path, f"{where}.recipe", item["recipe"])
        args = item.get("args") or {}
        if not isinstance(args, dict):
            raise StudyError(f"{where}.args: expected a mapping of flags to values")
        bad = sorted(set(args) - recipe.flags)
        if bad:
            raise StudyError(f"{where}.args: {bad} not flag(s) of the {recipe.name} recipe")
        merged = recipe.preset | {k: v for k, v in shared.items() if k in recipe.flags} | args
        pinned = frozenset(recipe.preset) | frozenset(args)
        rows.append(Row(name, recipe, merged, str(item.get("note") or ""), pinned))
    return rows


def _questions(path: Path, raw: Any, names: set[str]) -> list[Question]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise StudyError(f"{path}: questions: expected a list")
    questions = []
    for i, item in enumerate(raw):
        where = f"{path}: questions[{i}]"
        if not isinstance(item, dict):
            raise StudyError(f"{where}: expected a mapping with title and rows")
        _check_keys(where, item, QUESTION_KEYS, QUESTION_KEYS)
        rows = item["rows"]
        if not isinstance(rows, list) or len(rows) < 2:
            raise StudyError(f"{where}.rows: expected a list of two or more row names")
        missing = [name for name in rows if name not in names]
        if missing:
            raise StudyError(f"{where}.rows: no row named {missing}; rows are {sorted(names)}")
        questions.append(Question(str(item["title"]), [str(name) for name in rows]))
    return questions


def _int_list(where: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value or not all(type(v) is int for v in value):
        raise StudyError(f"{where}: expected a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise StudyError(f"{where}: a seed is listed twice: {value}")
    return value


def load_study(path: str | Path) -> Study:
    """Read and validate a study file (before anything runs): keys, recipes, flags, row names, questions."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no such study file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: expected a mapping with name, seeds, rows")
    _check_keys(str(path), raw, STUDY_KEYS, {"name", "rows"})
    name = raw["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise StudyError(f"{path}: name: {name!r} is not a usable folder name")
    shared = raw.get("shared") or {}
    if not isinstance(shared, dict):
        raise StudyError(f"{path}: shared: expected a mapping of flags to values")
    rows = _rows(path, raw["rows"], shared)
    unused = sorted(set(shared) - set().union(*(row.recipe.flags for row in rows)))
    if unused:
        raise StudyError(f"{path}: shared: {unused} not a flag of any row's recipe")
    split_seed = raw.get("split_seed", DEFAULT_SPLIT_SEED)
    if type(split_seed) is not int:
        raise StudyError(f"{path}: split_seed: expected an integer, got {split_seed!r}")
    return Study(
        name=name,
        path=path,
        rows=rows,
        questions=_questions(path, raw.get("questions"), {row.name for row in rows}),
        seeds=_int_list(f"{path}: seeds", raw.get("seeds", [DEFAULT_SPLIT_SEED])),
        split_seed=split_seed,
        description=str(raw.get("description") or ""),
        train_sizes=parse_train_sizes(f"{path}: train_sizes", raw.get("train_sizes") or []),
    )


def parse_train_sizes(where: str, values: list[Any]) -> list[int | None]:
    """Learning-curve sizes: positive integers and ``all`` (-> None), each once, e.g. ``[8, 16, all]``."""
    if not isinstance(values, list):
        raise StudyError(f"{where}: expected a list of sizes such as [8, 16, 32, all], got {values!r}")
    sizes: list[int | None] = []
    for value in values:
        text = str(value).strip().lower()
        if text != "all" and not (text.isdigit() and int(text) > 0):
            raise StudyError(f"{where}: {value!r} is not a number of training examples (> 0) or 'all'")
        size = None if text == "all" else int(text)
        if size in sizes:
            raise StudyError(f"{where}: {value!r} is listed twice")
        sizes.append(size)
    return sizes


def parse_setting(text: str) -> tuple[str | None, str, Any]:
    """``[target:]flag=value`` -> ``(target or None, flag, value)``; the value is read as YAML (``1e-4``,
    ``true``, ``[1, 2]``)."""
    head, sep, value = text.partition("=")
    if not sep or not head:
        raise StudyError(f"--set {text!r}: expected [recipe_or_row:]flag=value")
    target, _, flag = head.rpartition(":")
    return target or None, flag.removeprefix("--"), yaml.safe_load(value) if value else ""


def apply_overrides(
    study: Study, overrides: dict[str, Any], settings: list[str] = (), extra: list[str] = ()
) -> None:
    """Apply command-line overrides in place.

    ``overrides`` (flag -> value), untargeted ``settings`` (``flag=value``) and ``extra`` (``--flag value
    ...``, what came after ``--``) replace shared arguments and recipe defaults in every row whose recipe
    takes the flag -- but never what a row sets itself (its ``args`` are what the row *is*: a model size, a
    pooling, batch 1 for no padding). Targeted settings (``recipe:flag=value``, ``row:flag=value``) come
    last and replace even that. A flag no row takes is an error; :attr:`Study.notes` records each."""
    parsed = [parse_setting(text) for text in settings]
    everywhere = dict(overrides) | {flag: value for target, flag, value in parsed if target is None}
    everywhere |= _parse_extra(extra)
    for flag, value in everywhere.items():
        takers = [row for row in study.rows if flag in row.recipe.flags]
        if not takers:
            raise StudyError(f"--{flag}: not a flag of any row's recipe in {study.path}")
        changed = [row for row in takers if flag not in row.pinned]
        for row in changed:
            row.args[flag] = value
        kept = [row.name for row in takers if row not in changed]
        note = f"--{flag} {value}: rows {[row.name for row in changed]}"
        study.notes.append(note + (f"; kept their own value: {kept}" if kept else ""))
    names = {row.name for row in study.rows}
    for target, flag, value in parsed:
        if target is None:
            continue
        rows = [row for row in study.rows if target in (row.name, row.recipe.name)]
        if not rows:
            raise StudyError(
                f"--set {target}:{flag}: no row or recipe named {target!r}; rows: {sorted(names)}"
            )
        for row in rows:
            if flag not in row.recipe.flags:
                raise StudyError(f"--set {target}:{flag}: not a flag of the {row.recipe.name} recipe")
            row.args[flag] = value
        study.notes.append(f"--set {target}:{flag}={value}: rows {[row.name for row in rows]}")


def group_flags(tokens: list[str]) -> dict[str | None, list[str]]:
    """``--flag v1 v2 --other v`` -> ``{"flag": ["v1", "v2"], "other": ["v"]}``; a flag given twice keeps
    its last values; values before any ``--flag`` are kept under ``None``."""
    values: dict[str | None, list[str]] = {}
    flag = None
    for token in tokens:
        if token.startswith("--"):
            flag = token[2:]
            values[flag] = []
        else:
            values.setdefault(flag, []).append(token)
    return values


def _parse_extra(extra: list[str]) -> dict[str, Any]:
    """``--flag v1 v2 --other v`` -> ``{"flag": [v1, v2], "other": v}`` (values as YAML scalars)."""
    groups = group_flags(extra)
    if None in groups:
        raise StudyError(f"recipe flags after --: {groups[None][0]!r} comes before any --flag")
    return {
        k: (v[0] if len(v) == 1 else v or True)
        for k, v in ((flag, [yaml.safe_load(t) for t in tokens]) for flag, tokens in groups.items())
    }


def select(study: Study, rows: list[str] | None, seeds: list[int] | None) -> None:
    """Keep only ``rows`` and replace the seeds, in place. A question keeps its kept rows while its
    reference (first) row is kept and one other is: without its reference it is dropped, not answered
    against another row under its title."""
    if seeds is not None:
        study.seeds = _int_list("--seeds", list(seeds))
    if rows:
        missing = sorted(set(rows) - {row.name for row in study.rows})
        if missing:
            raise StudyError(f"--rows: no row named {missing} in {study.path}")
        study.rows = [row for row in study.rows if row.name in rows]
        kept = []
        for question in study.questions:
            reference, others = question.rows[0], [name for name in question.rows[1:] if name in rows]
            if reference not in rows:
                if others:
                    logger.info("question %r left out: its reference row %s is not in --rows",
                                question.title, reference)  # fmt: skip
                continue
            if others:
                question.rows = [reference, *others]
                kept.append(question)
        study.questions = kept
