"""Datasets pipeline: load (SMS Spam, IMDB, any text/label file), split without leakage, tokenise,
pad and batch -- all on ``datasets``, with every row counted.

    from hf_spam.data import load_dataset_by_name, split, tokenize, make_dataloader, longest_length
    data = load_dataset_by_name("sms_spam", "../shared/data/sms_spam/SMSSpamCollection")
    splits = split(data, "book", seed=123)                      # 1,045 / 149 / 300
    tokens = tokenize(splits, tokenizer)                         # cached; no padding yet
    train = make_dataloader(tokens["train"], tokenizer, 8, padding="longest_in_dataset", shuffle=True)

Every loader and :func:`split` take ``return_report=True`` to also return what happened to each row.
"""

from ..errors import DataError
from .arguments import DataArguments
from .batching import (
    LengthGroupedBatchSampler,
    PaddingCollator,
    example_lengths,
    longest_length,
    make_dataloader,
    padding_collator,
)
from .cache import get_cache_dir
from .clean import clean_text
from .files import load_text_file, resolve_files
from .labels import parse_label_map
from .pairs import PAIR_COLUMN, PAIR_SEPARATOR, encode, join_pairs, pair_record, uses_pair_encoding
from .pipeline import balanced_subset, load_splits, subset
from .report import LoadReport, SkippedRow
from .sources import (
    IMDB_HUB_ID,
    SMS_SHA256,
    SMS_URL,
    dataset_label,
    load_dataset_by_name,
    load_imdb,
    load_sms_spam,
    named_dataset,
)
from .splits import SplitReport, check_splits, split
from .summary import summarize
from .tokenizer import load_tokenizer
from .tokenizing import resolve_max_length, tokenize

__all__ = [
    "IMDB_HUB_ID",
    "PAIR_COLUMN",
    "PAIR_SEPARATOR",
    "SMS_SHA256",
    "SMS_URL",
    "DataArguments",
    "DataError",
    "LengthGroupedBatchSampler",
    "LoadReport",
    "PaddingCollator",
    "SkippedRow",
    "SplitReport",
    "balanced_subset",
    "check_splits",
    "clean_text",
    "dataset_label",
    "encode",
    "example_lengths",
    "get_cache_dir",
    "join_pairs",
    "load_dataset_by_name",
    "load_imdb",
    "load_sms_spam",
    "load_splits",
    "load_text_file",
    "load_tokenizer",
    "longest_length",
    "make_dataloader",
    "named_dataset",
    "padding_collator",
    "pair_record",
    "parse_label_map",
    "resolve_files",
    "resolve_max_length",
    "split",
    "subset",
    "summarize",
    "tokenize",
    "uses_pair_encoding",
]
