"""`ArithmeticStream`: unlimited training examples built on the fly, never repeated across workers."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch

from hf_linear.data.arithmetic.builder import check_count
from hf_linear.data.arithmetic.spec import ArithmeticSpec
from hf_linear.data.arithmetic.splits import select, stream_input_blocks
from hf_linear.data.arithmetic.tokenizer import TOKEN_TO_ID

_STREAM_CHUNK = 4096  # examples built at once (small: the first one comes fast)


def distributed_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


class SeededStream(torch.utils.data.IterableDataset):
    """An endless stream of training examples whose random stream is keyed by (seed, epoch,
    distributed rank, data-loader worker): workers and ranks never replay each other's examples,
    and `set_epoch` (called by `Trainer`) starts new streams."""

    def __init__(self, seed: int, rank: int | None):
        super().__init__()
        self.seed, self.rank, self.epoch = check_count("seed", seed), rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def stream_key(self) -> tuple[int, int, int, int]:
        """(seed, epoch, rank, worker) of the stream the calling process iterates."""
        worker = torch.utils.data.get_worker_info()
        rank = self.rank if self.rank is not None else distributed_rank()
        return self.seed, self.epoch, rank, worker.id if worker is not None else 0


class ArithmeticStream(SeededStream):
    """Endless training examples ``{"input_ids": list[int], "prompt_length": int}`` (ids end with
    [EOS]), drawn with replacement from the TRAIN inputs only.

    Each (seed, epoch, distributed rank, data-loader worker) has its own random stream, so
    data-loader workers and ranks never replay each other's examples (the authors' code gives
    every worker the same random state). `set_epoch` (called by `Trainer`) starts new streams.
    The rank is taken from torch.distributed, else the RANK environment variable, unless given.
    """

    def __init__(
        self,
        task: str,
        digits: int | Sequence[int],
        cot: str,
        seed: int = 0,
        every: int | None = None,
        rank: int | None = None,
    ):
        super().__init__(seed, rank)
        self.spec = ArithmeticSpec.create(task, digits, cot, every)

    def __iter__(self) -> Iterator[dict]:
        eos, prompt_length = TOKEN_TO_ID["[EOS]"], self.spec.prompt_length
        for inputs in stream_input_blocks(self.spec, self.stream_key()):
            for start in range(0, len(inputs[0]), _STREAM_CHUNK):
                ids = self.spec.ids(select(inputs, slice(start, start + _STREAM_CHUNK)))
                for row in ids.tolist():
                    yield {"input_ids": [*row, eos], "prompt_length": prompt_length}
