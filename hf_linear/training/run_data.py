"""The data of a run, built once from its checked config: the splits it trains and evaluates on,
its tokenizer and the sequence length its model's window is sized by."""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Dataset

from hf_linear.checkpoints import load_tokenizer
from hf_linear.data.sources import DataSource, longest_sequence
from hf_linear.evaluation.exact_match import has_prompts
from hf_linear.evaluation.held_out import held_out_split
from hf_linear.training.config import RunConfig


@dataclass
class RunData:
    source: DataSource
    train: object  # a Dataset, or an endless stream
    held_out: Dataset  # evaluation.split, whole (the final evaluation takes its first num_samples)
    during_training: Dataset | None  # evaluated at every eval_steps (None: no such split, or 0 samples)
    tokenizer: object
    sequence_length: int  # the longest example of the train and held-out splits

    @property
    def language_model(self) -> bool:
        """Windows of `input_ids` only (TinyStories) rather than prompts and answers."""
        return not has_prompts(self.held_out)


def run_tokenizer(model_section: dict, source: DataSource):
    """The data's tokenizer; when fine-tuning, the checkpoint's, unless the data names its own
    (then both must agree on every token the checkpoint knows)."""
    data_tokenizer = source.tokenizer()
    if "init_from" not in model_section:
        return data_tokenizer
    checkpoint_tokenizer = load_tokenizer(model_section["init_from"])
    data_vocab = data_tokenizer.get_vocab()
    for token, token_id in checkpoint_tokenizer.get_vocab().items():
        if data_vocab.get(token) != token_id:
            raise ValueError(
                f"model.init_from: the checkpoint's tokenizer and the data's disagree on token {token!r} "
                f"(id {token_id} vs {data_vocab.get(token)}): the weights cannot be carried over"
            )
    return data_tokenizer if len(data_tokenizer) > len(checkpoint_tokenizer) else checkpoint_tokenizer


def data_for(config: RunConfig) -> RunData:
    """Load the config's data (from the source its check built); ValueError for a missing or empty split."""
    source, evaluation = config.data_source(), config.evaluation
    datasets = source.load()
    if "train" not in datasets:
        raise ValueError(f"the dataset has no 'train' split (splits: {', '.join(datasets)})")
    train = datasets["train"]
    if isinstance(train, Dataset) and len(train) == 0:  # (a stream is endless)
        raise ValueError("the 'train' split is empty (e.g. dataset train_size: 0): nothing to train on")
    held_out = held_out_split(datasets, evaluation.split, "evaluation.split")
    during = None
    if evaluation.during_training_split in datasets and evaluation.during_training_samples:
        split = datasets[evaluation.during_training_split]
        during = split.select(range(min(evaluation.during_training_samples, len(split))))
    tokenizer = run_tokenizer(config.model, source)
    sequence_length = max(longest_sequence(train), longest_sequence(held_out))
    return RunData(source, train, held_out, during, tokenizer, sequence_length)
