"""LoRA of the masked map (hf_linear.lora) against an independent dense reference.

The reference assembles, with plain loops, the dense (T·d)×(T·d) nn.Linear weight (out, in) of
the base blocks plus the LoRA update ΔW[i, j] = scale·A_j B_i, multiplies the sum by the block
lower-triangular mask, and runs every prefix's last ≤ T tokens separately, padded to T.

Only `import hf_linear` here: PEFT's own calls must work on the masked map without the user
importing hf_linear.lora (hf_linear.peft_support); its helpers are imported where tested.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Trainer, TrainingArguments

import hf_linear

V, T, D, R = 13, 5, 4, 2
tiny = partial(tiny_model, vocab_size=V, context_length=T, hidden_size=D, pad_token_id=0)


def adapted(kind: str = "linear", init_lora_weights=False, **lora_kwargs):
    """A PEFT model with a non-zero adapter (init_lora_weights=False: A and B both random)."""
    config = LoraConfig(
        r=R,
        lora_alpha=3,
        target_modules=["mixing"],
        task_type="CAUSAL_LM",
        init_lora_weights=init_lora_weights,
        **lora_kwargs,
    )
    torch.manual_seed(1)
    return get_peft_model(tiny(kind), config).eval()


def lora_factors(peft_model, adapter: str = "default"):
    layer = peft_model.base_model.model.model.mixing
    return layer.lora_mixing_A[adapter], layer.lora_mixing_B[adapter], layer.scaling[adapter]


def dense_weight(base_model, a=None, b=None, scale=0.0) -> torch.Tensor:
    """Masked dense (T·d)×(T·d) weight (out, in) of the base blocks plus scale·A_j B_i."""
    mixing = base_model.model.mixing
    if hasattr(mixing, "get_base_layer"):
        mixing = mixing.get_base_layer()
    dense = torch.randn(T * D, T * D) * 100  # garbage above the diagonal: the mask must remove it
    k = 0
    for i in range(T):
        for j in range(i + 1):
            block = mixing.weight[k]  # (d_in, d_out)
            if a is not None:
                block = block + scale * (a[j] @ b[i])
            dense[i * D : (i + 1) * D, j * D : (j + 1) * D] = block.T
            k += 1
    return dense * torch.kron(torch.tril(torch.ones(T, T)), torch.ones(D, D))


def reference_logits(base_model, ids, weight) -> torch.Tensor:
    """(B, L, V): position p is the model on tokens max(0, p-T+1)..p, padded on the right to T."""
    mixing = base_model.model.mixing
    bias = (mixing.get_base_layer() if hasattr(mixing, "get_base_layer") else mixing).bias.reshape(-1)
    emb = base_model.model.embed_tokens.weight
    rows = []
    for b in range(ids.shape[0]):
        row = []
        for p in range(ids.shape[1]):
            window = ids[b, max(0, p - T + 1) : p + 1]
            x = torch.cat([emb[window], torch.zeros(T - len(window), D)])
            y = (x.reshape(-1) @ weight.T + bias).reshape(T, D)[len(window) - 1]
            if base_model.config.model_type == "mlp_lm":
                y = torch.relu(y)
                for layer in base_model.model.mlp.layers:
                    y = torch.relu(y @ layer.weight.T + layer.bias)
            row.append(y @ base_model.lm_head.weight.T + base_model.lm_head.bias)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def random_ids(batch, length, seed=0):
    return torch.randint(1, V, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("length", [1, T - 1, T, T + 4])
def test_adapted_logits_match_dense_reference(kind, length):
    peft_model = adapted(kind)
    a, b, scale = lora_factors(peft_model)
    ids = random_ids(2, length, seed=length)
    with torch.no_grad():
        got = peft_model(input_ids=ids).logits
        base_model = peft_model.base_model.model
        expected = reference_logits(base_model, ids, dense_weight(base_model, a, b, scale))
        without = reference_logits(base_model, ids, dense_weight(base_model))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert (got - without).abs().max() > 1e-2  # the adapter really changes the function


def test_default_init_starts_equal_to_base_model():
    model = tiny("mlp")
    ids = random_ids(2, T + 3)
    with torch.no_grad():
        before = model(ids).logits
        peft_model = get_peft_model(model, LoraConfig(r=R, target_modules=["mixing"], task_type="CAUSAL_LM"))
        after = peft_model(input_ids=ids).logits
    a, b, _ = lora_factors(peft_model)
    assert a.abs().sum() > 0 and b.abs().sum() == 0  # PEFT convention: B = 0
    assert torch.equal(before, after)


def test_adapter_is_causal():
    peft_model = adapted("mlp")
    ids = random_ids(1, T + 4)
    changed = ids.clone()
    changed[0, 3] = (changed[0, 3] % (V - 1)) + 1
    with torch.no_grad():
        x, y = peft_model(input_ids=ids).logits, peft_model(input_ids=changed).logits
    assert torch.equal(x[:, :3], y[:, :3])
    assert not torch.allclose(x[:, 3], y[:, 3])
    # position T+3 sees tokens 4..T+3 only: token 3 dropped out of its window
    torch.testing.assert_close(x[:, 3 + T], y[:, 3 + T], rtol=0, atol=1e-6)


def test_only_lora_factors_get_gradients_and_they_match_the_dense_reference():
    peft_model = adapted("mlp").train()
    a, b, scale = lora_factors(peft_model)
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable == {
        "base_model.model.model.mixing.lora_mixing_A.default",
        "base_model.model.model.mixing.lora_mixing_B.default",
    }
    ids = random_ids(2, T + 2, seed=3)
    peft_model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is None for p in peft_model.parameters() if not p.requires_grad)

    # the same loss through the dense masked reference, differentiated w.r.t. copies of A and B
    base_model = peft_model.base_model.model
    a_ref, b_ref = a.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    with torch.no_grad():
        base_dense = dense_weight(base_model)
    delta = torch.zeros(T * D, T * D)
    for i in range(T):
        for j in range(i + 1):
            block = torch.zeros(T * D, T * D)
            block[i * D : (i + 1) * D, j * D : (j + 1) * D] = (scale * (a_ref[j] @ b_ref[i])).T
            delta = delta + block
    logits = reference_logits(base_model, ids, base_dense.detach() + delta)
    F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1)).backward()
    torch.testing.assert_close(a.grad, a_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.grad, b_ref.grad, rtol=1e-4, atol=1e-5)


def test_generate_uses_the_adapter_beyond_the_window():
    peft_model = adapted("linear")
    a, b, scale = lora_factors(peft_model)
    base_model = peft_model.base_model.model
    weight = dense_weight(base_model, a, b, scale)
    prompt = random_ids(1, 3, seed=5)
    steps = 2 * T  # well past the window: generation runs on last_position(window)
    with torch.no_grad():
        got = peft_model.generate(input_ids=prompt, max_new_tokens=steps, do_sample=False)
        expected = prompt[0].tolist()
        for _ in range(steps):
            logits = reference_logits(base_model, torch.tensor([expected]), weight)
            expected.append(int(logits[0, -1].argmax()))
    assert got[0].tolist() == expected


def test_last_position_equals_full_forward_for_every_window_length():
    peft_model = adapted("mlp")
    layer = peft_model.base_model.model.model.mixing
    x = torch.randn(3, T, D)
    with torch.no_grad():
        full = layer(x)
        for n in range(1, T + 1):
            torch.testing.assert_close(layer.last_position(x[:, :n]), full[:, n - 1], rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_and_merge_and_unload(tmp_path):
    peft_model = adapted("mlp")
    ids = random_ids(2, T + 3, seed=7)
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    peft_model.save_pretrained(tmp_path / "adapter")

    # a plain PeftModel.from_pretrained on a fresh copy of the base model rebuilds the adapter
    loaded = PeftModel.from_pretrained(tiny("mlp"), tmp_path / "adapter").eval()
    assert type(loaded.base_model.model.model.mixing).__name__ == "MaskedMixingLoraLayer"
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, rtol=0, atol=0)
    # the documented per-config route gives the same
    from hf_linear.lora import load_adapter

    also = load_adapter(tiny("mlp"), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(also(input_ids=ids).logits, expected, rtol=0, atol=0)

    merged = loaded.merge_and_unload()
    assert type(merged.model.mixing).__name__ == "MaskedPositionMixing"
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, expected, rtol=1e-5, atol=1e-5)
        # the generation path of the merged model too
        out = merged(ids, logits_to_keep=1).logits
    torch.testing.assert_close(out[:, -1], expected[:, -1], rtol=1e-5, atol=1e-5)


def test_merge_unmerge_and_disable_adapter():
    peft_model = adapted("linear")
    ids = random_ids(2, T + 1, seed=8)
    base_weight = peft_model.base_model.model.model.mixing.get_base_layer().weight.detach().clone()
    with torch.no_grad():
        adapted_logits = peft_model(input_ids=ids).logits
        with peft_model.disable_adapter():
            base_logits = peft_model(input_ids=ids).logits
        torch.testing.assert_close(base_logits, tiny("linear")(ids).logits, rtol=0, atol=0)
        peft_model.merge_adapter()
        torch.testing.assert_close(peft_model(input_ids=ids).logits, adapted_logits, rtol=1e-5, atol=1e-5)
        peft_model.unmerge_adapter()
    torch.testing.assert_close(
        peft_model.base_model.model.model.mixing.get_base_layer().weight, base_weight, rtol=0, atol=1e-6
    )


def test_delta_weight_is_the_packed_low_rank_product():
    peft_model = adapted("linear")
    layer = peft_model.base_model.model.model.mixing
    a, b, scale = lora_factors(peft_model)
    delta = layer.get_delta_weight("default")
    k = 0
    for i in range(T):
        for j in range(i + 1):
            torch.testing.assert_close(delta[k], scale * a[j] @ b[i])
            k += 1
    assert k == delta.shape[0]


def test_lora_config_helper_and_unsupported_options():
    from hf_linear.lora import lora_config

    config = lora_config(r=3)
    assert config.target_modules == {"mixing"} and config.r == 3 and config.lora_alpha == 6
    peft_model = get_peft_model(tiny(), config)
    assert peft_model.get_nb_trainable_parameters()[0] == 2 * T * D * 3
    for bad in ({"lora_bias": True}, {"use_dora": True}, {"init_lora_weights": "pissa"}):
        with pytest.raises(ValueError):
            get_peft_model(tiny(), LoraConfig(r=2, target_modules=["mixing"], **bad))


def test_trainer_trains_only_the_adapter(tmp_path):
    peft_model = get_peft_model(tiny("mlp"), LoraConfig(r=R, target_modules=["mixing"], task_type="CAUSAL_LM"))
    base_before = {name: p.detach().clone() for name, p in peft_model.named_parameters() if not p.requires_grad}
    b_before = lora_factors(peft_model)[1].detach().clone()
    ids = random_ids(8, T + 1, seed=11)  # one batch, seen at every step: the loss must go down
    dataset = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=5e-2,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=peft_model, args=args, train_dataset=dataset)
    result = trainer.train()
    assert result.global_step == 4
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert not torch.equal(lora_factors(peft_model)[1], b_before)
    for name, p in peft_model.named_parameters():
        if name in base_before:
            assert torch.equal(p, base_before[name]), name


def test_lora_applies_to_a_remote_code_copy_of_the_model(tmp_path, monkeypatch):
    """trust_remote_code models have their own MaskedPositionMixing class (the checkpoint's copy)."""
    import importlib
    import shutil

    package = tmp_path / "remote_copy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("modeling_hf_linear.py", "masked_mixing.py", "configuration_hf_linear.py"):
        shutil.copy(Path(hf_linear.__file__).parent / name, package / name)
    monkeypatch.syspath_prepend(str(tmp_path))
    remote = importlib.import_module("remote_copy.modeling_hf_linear")
    remote_config = importlib.import_module("remote_copy.configuration_hf_linear")
    torch.manual_seed(0)
    model = remote.LinearLMForCausalLM(remote_config.LinearLMConfig(vocab_size=V, context_length=T, hidden_size=D))
    assert not isinstance(model.model.mixing, type(tiny().model.mixing))  # another class than hf_linear's
    peft_model = get_peft_model(model.eval(), LoraConfig(r=R, target_modules=["mixing"], init_lora_weights=False))
    assert type(peft_model.base_model.model.model.mixing).__name__ == "MaskedMixingLoraLayer"
    a, b, scale = lora_factors(peft_model)
    ids = random_ids(2, T + 2)
    with torch.no_grad():
        expected = reference_logits(model, ids, dense_weight(model, a, b, scale))
        torch.testing.assert_close(peft_model(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_peft_works_in_a_fresh_process_after_a_plain_import_hf_linear():
    """`import hf_linear` loads no peft, yet PEFT's own get_peft_model accepts the masked map
    (hf_linear.lora is imported when the program imports peft, whichever comes first)."""
    import os
    import subprocess
    import sys

    program = (
        "import sys; import hf_linear; assert 'peft' not in sys.modules\n"
        "from peft import LoraConfig, get_peft_model\n"
        "model = hf_linear.LinearLMForCausalLM(hf_linear.LinearLMConfig(vocab_size=7, context_length=3, hidden_size=2))\n"
        "peft_model = get_peft_model(model, LoraConfig(r=1, target_modules=['mixing']))\n"
        "print(type(peft_model.base_model.model.model.mixing).__name__)\n"
    )
    for order in (program, "import peft\n" + program.replace("assert 'peft' not in sys.modules", "pass")):
        done = subprocess.run(
            [sys.executable, "-c", order],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "MaskedMixingLoraLayer"
