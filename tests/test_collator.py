"""The collator against a plain per-row loop, and the training columns it is handed."""

import pytest
import torch
from datasets import Dataset

from hf_linear.data.collator import CausalLMCollator, training_columns

PAD = 0


def reference_batch(examples, pad, mask_prompt):
    """One row at a time: right-pad with `pad`, label every real token after the prompt."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids, labels, mask = [], [], []
    for e in examples:
        ids = list(e["input_ids"])
        first = e["prompt_length"] if mask_prompt and "prompt_length" in e else 0
        input_ids.append(ids + [pad] * (width - len(ids)))
        labels.append([-100] * first + ids[first:] + [-100] * (width - len(ids)))
        mask.append([1] * len(ids) + [0] * (width - len(ids)))
    return torch.tensor(input_ids), torch.tensor(labels), torch.tensor(mask)


def random_examples(seed, ragged, with_prompt):
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(7):
        length = int(torch.randint(3, 12, (1,), generator=g)) if ragged else 9
        example = {"input_ids": torch.randint(1, 50, (length,), generator=g).tolist()}
        if with_prompt:
            example["prompt_length"] = int(torch.randint(0, length, (1,), generator=g))
        examples.append(example)
    return examples


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("with_prompt", [False, True])
@pytest.mark.parametrize("mask_prompt", [False, True])
def test_batches_equal_a_plain_loop(ragged, with_prompt, mask_prompt):
    for seed in range(5):
        examples = random_examples(seed, ragged, with_prompt)
        batch = CausalLMCollator(PAD, mask_prompt)(examples)
        input_ids, labels, mask = reference_batch(examples, PAD, mask_prompt)
        assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
        assert torch.equal(batch["input_ids"], input_ids)
        assert torch.equal(batch["labels"], labels)
        padded = any(len(e["input_ids"]) < input_ids.shape[1] for e in examples)
        # a full batch carries no attention mask (the model then skips the mask handling)
        assert ("attention_mask" in batch) == padded
        if padded:
            assert torch.equal(batch["attention_mask"], mask)


def test_training_columns_keep_only_what_the_collator_reads():
    rows = {"prompt": ["1*2="], "text": ["1*2=2"], "input_ids": [[1, 2, 3]], "prompt_length": [2], "a": [1]}
    slim = training_columns(Dataset.from_dict(rows))
    assert slim.column_names == ["input_ids", "prompt_length"]
    assert slim[0] == {"input_ids": [1, 2, 3], "prompt_length": 2}
    windows = Dataset.from_dict({"input_ids": [[1, 2]]})
    assert training_columns(windows).column_names == ["input_ids"]
    stream = iter([{"input_ids": [1]}])  # not a Dataset: handed over as it is
    assert training_columns(stream) is stream
