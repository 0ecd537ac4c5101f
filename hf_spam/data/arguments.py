"""The data flags every recipe shares (``--dataset``, ``--data_source``, ``--protocol``, ``--padding``, ...).

Defaults follow the book's chapter 6, except padding: ``dynamic`` padding gives the same predictions
(pooling reads the attention mask) for much less compute; ``--padding longest_in_dataset`` is the book's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .batching import Padding, PaddingSide
from .labels import parse_label_map
from .report import OnBadLine
from .sources import named_dataset
from .splits import Protocol


@dataclass
class DataArguments:
    """Which data, how it is split, tokenised and batched."""

    dataset: str = field(
        default="sms_spam",
        metadata={
            "help": "sms_spam, imdb, or csv/tsv/jsonl/parquet files: paths, a glob ('data/*.csv') or "
            "paths separated by commas",
            "nargs": "+",  # a shell-expanded glob gives several paths; joined with commas below
        },
    )
    data_source: str | None = field(
        default=None,
        metadata={"help": "local file/folder of the dataset (default: download from UCI / the hub)"},
    )
    protocol: Protocol | None = field(
        default=None, metadata={"help": "split protocol (default: book for sms_spam, official for imdb)"}
    )
    dedup: bool = field(default=False, metadata={"help": "keep duplicate texts in one split (no leakage)"})
    text_column: str = field(default="text", metadata={"help": "text column of a generic file"})
    label_column: str = field(default="label", metadata={"help": "label column of a generic file"})
    text_pair_column: str | None = field(
        default=None,
        metadata={
            "help": "second text column of sentence pairs (MRPC-style files): encoders read the pair with "
            "segment ids, decoders and TF-IDF the two texts joined by a newline"
        },
    )
    label_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "class names in id order, for files (default: sorted names, or '0'..'n-1' for ids); "
            "a label equal to one of them up to case and surrounding spaces is that class"
        },
    )
    label_map: dict[str, str] | str | None = field(
        default=None,
        metadata={
            "help": "rename raw labels first: 'Spam=spam,spam =spam' (labels as written), or a YAML mapping"
        },
    )
    on_bad_line: OnBadLine = field(
        default="error", metadata={"help": "a bad row stops loading (error) or is skipped and reported"}
    )
    clean_text: bool = field(
        default=False, metadata={"help": "unescape HTML entities, turn <br /> into spaces"}
    )
    max_length: int | None = field(
        default=None, metadata={"help": "truncate to this many tokens (default: the model's context)"}
    )
    padding: Padding = field(
        default="dynamic",
        metadata={
            "help": "dynamic: each batch to its longest; longest_in_dataset: the book's; none: batch 1"
        },
    )
    padding_side: PaddingSide = field(default="right", metadata={"help": "where pad tokens go"})
    group_by_length: bool = field(
        default=False, metadata={"help": "batch examples of similar length (speed)"}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "use a random (seeded) subset of N train rows"}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "use a random (seeded) subset of N validation and N test rows"}
    )
    train_size: int | None = field(
        default=None,
        metadata={
            "help": "learning curves: train on N labelled rows, balanced across classes, drawn with --seed "
            "(nested: the N rows are the first N of every larger size); validation and test unchanged"
        },
    )
    split_seed: int | None = field(
        default=None,
        metadata={
            "help": "seeds the split and the max_*_samples subsets (default: --seed); fix it to vary "
            "--seed on the same split"
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.dataset, (list, tuple)):
            self.dataset = ",".join(self.dataset)
        parse_label_map(self.label_map)  # a malformed map is an error now, not after loading
        if self.label_names is not None and named_dataset(self.dataset) is not None:
            raise ValueError(f"--label_names is for file datasets; {self.dataset}'s classes are fixed")
        if self.text_pair_column is not None and named_dataset(self.dataset) is not None:
            raise ValueError(f"--text_pair_column is for file datasets; {self.dataset} has one text per row")
        if self.protocol is None:
            self.protocol = "official" if self.dataset == "imdb" else "book"
        for name in ("max_length", "max_train_samples", "max_eval_samples", "train_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive integer, got {value}")
