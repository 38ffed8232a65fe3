"""The models against an independent reference: the authors' dense weight × block mask.

The reference below does not use the library's masked map: it assembles the dense (T·d)×(T·d)
matrix of an nn.Linear from the stored blocks with a plain loop, multiplies it by the
block-lower-triangular mask, and defines the sliding window by running every prefix's last ≤ T
tokens separately, padded on the right to T (as the paper describes it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import hf_linear  # noqa: F401  (registers the Auto classes)
from hf_linear import LinearLMConfig, LinearLMForCausalLM, MLPLMConfig, MLPLMForCausalLM

V, T, D = 23, 6, 4
tiny = partial(tiny_model, vocab_size=V, context_length=T, hidden_size=D)


def dense_masked_weight(model) -> torch.Tensor:
    """The authors' formulation: a dense nn.Linear(T·d, T·d) weight (out, in) times a block mask."""
    mixing = model.model.mixing
    t, d = mixing.context_length, mixing.hidden_size
    dense = torch.randn(t * d, t * d)  # garbage above the diagonal: the mask must remove it
    k = 0
    for i in range(t):
        for j in range(i + 1):
            dense[i * d : (i + 1) * d, j * d : (j + 1) * d] = mixing.weight[k].T  # block k = W[i, j] (in, out)
            k += 1
    mask = torch.kron(torch.tril(torch.ones(t, t)), torch.ones(d, d))
    return dense * mask


def reference_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, L, V): position p is the model on tokens max(0, p-T+1)..p, padded to T."""
    cfg = model.config
    t, d = cfg.context_length, cfg.hidden_size
    weight = dense_masked_weight(model)
    bias = model.model.mixing.bias.reshape(-1)
    emb = model.model.embed_tokens.weight
    out = torch.empty(ids.shape[0], ids.shape[1], cfg.vocab_size)
    for b in range(ids.shape[0]):
        for p in range(ids.shape[1]):
            window = ids[b, max(0, p - t + 1) : p + 1]
            x = torch.zeros(t, d)
            x[: len(window)] = emb[window]  # right padding (its value cannot matter)
            y = (x.reshape(-1) @ weight.T + bias).reshape(t, d)[len(window) - 1]
            if cfg.model_type == "mlp_lm":
                y = torch.relu(y)
                for layer in model.model.mlp.layers:
                    y = torch.relu(y @ layer.weight.T + layer.bias)
            out[b, p] = y @ model.lm_head.weight.T + model.lm_head.bias
    return out


# ---------------------------------------------------------------------------------------------
# parameters


def test_paper_parameter_counts_hold_only_unmasked_blocks():
    with torch.device("meta"):
        linear = LinearLMForCausalLM(LinearLMConfig())  # paper: T=64, d=256, V=50258
        mlp = MLPLMForCausalLM(MLPLMConfig())  # paper: T=307, d=128, V=117
    assert abs(linear.num_parameters() - 162.1e6) / 162.1e6 < 0.005
    assert abs(mlp.num_parameters() - 774.7e6) / 774.7e6 < 0.005
    # the paper's effective parameter count (Malach, ICML 2024, arXiv:2309.06979), term by term
    v, t, d = 50258, 64, 256
    assert linear.num_parameters() == v * d + t * (t + 1) // 2 * d * d + t * d + d * v + v
    v, t, d = 117, 307, 128
    assert mlp.num_parameters() == v * d + t * (t + 1) // 2 * d * d + t * d + (d * d + d) + d * v + v


def test_checkpoint_holds_fp32_parameters_only(tmp_path):
    model = tiny("mlp")
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    size = (tmp_path / "model.safetensors").stat().st_size
    payload = 4 * model.num_parameters()
    assert payload <= size < payload + 4096  # header only on top


# ---------------------------------------------------------------------------------------------
# the function


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("length", [1, T - 1, T, T + 5])
def test_logits_match_dense_masked_reference(kind, length):
    model = tiny(kind)
    ids = torch.randint(0, V, (2, length), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        got = model(ids).logits
    torch.testing.assert_close(got, reference_logits(model, ids), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 100])
def test_chunk_schedule_does_not_change_the_function(chunk_size):
    model = tiny("mlp", num_mlp_layers=2, mlp_hidden_size=7)
    ids = torch.randint(0, V, (3, T + 2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_logits(model, ids)
        model.model.mixing.chunk_size = chunk_size
        torch.testing.assert_close(model(ids).logits, expected, rtol=1e-4, atol=1e-4)


def test_mlp_without_hidden_layers_and_wider_layers():
    for overrides in ({"num_mlp_layers": 0}, {"num_mlp_layers": 3, "mlp_hidden_size": 9}):
        model = tiny("mlp", **overrides)
        ids = torch.randint(0, V, (1, T + 1), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            torch.testing.assert_close(model(ids).logits, reference_logits(model, ids), rtol=1e-4, atol=1e-4)


def test_gradients_match_dense_masked_reference():
    model = tiny("mlp").float()
    ids = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(3))
    model(ids, labels=ids).loss.backward()
    got = model.model.mixing.weight.grad.clone()

    # the same loss through a dense, masked, autograd-tracked weight
    dense = dense_masked_weight(model).detach().requires_grad_(True)
    mask = torch.kron(torch.tril(torch.ones(T, T)), torch.ones(D, D))
    x = model.model.embed_tokens.weight[ids].detach()
    y = (x.reshape(2, -1) @ (dense * mask).T + model.model.mixing.bias.reshape(-1).detach()).reshape(2, T, D)
    h = torch.relu(y)
    for layer in model.model.mlp.layers:
        h = torch.relu(h @ layer.weight.detach().T + layer.bias.detach())
    logits = h @ model.lm_head.weight.detach().T + model.lm_head.bias.detach()
    F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1)).backward()
    k = 0
    for i in range(T):
        for j in range(i + 1):
            torch.testing.assert_close(got[k], dense.grad[i * D : (i + 1) * D, j * D : (j + 1) * D].T)
            k += 1
    assert dense.grad[0:D, D : 2 * D].abs().sum() == 0  # masked blocks get no gradient


@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_every_gradient_matches_the_reference_beyond_the_window(chunk_size):
    """All parameters, sliding positions (L > T), prompt labels ignored, several chunk schedules:
    the masked map's hand-written backward against autograd through the dense reference."""
    model = tiny("mlp", mixing_chunk_size=chunk_size).float()
    ids = torch.randint(0, V, (2, T + 4), generator=torch.Generator().manual_seed(10))
    labels = ids.clone()
    labels[:, :2] = -100
    model(ids, labels=labels).loss.backward()
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    logits = reference_logits(model, ids)
    F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_output_depends_only_on_the_last_T_tokens_up_to_i():
    model = tiny("linear")
    ids = torch.randint(0, V, (1, 3 * T), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        base = model(ids).logits
        for k in range(ids.shape[1]):
            changed = ids.clone()
            changed[0, k] = (changed[0, k] + 1) % V
            diff = (model(changed).logits - base).abs().amax(dim=-1)[0]
            moved = set(torch.nonzero(diff > 1e-6).flatten().tolist())
            assert moved == set(range(k, min(k + T, ids.shape[1]))), k


def test_bf16_autocast_matches_fp32():
    model = tiny("mlp")
    ids = torch.randint(0, V, (4, T + 3), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fp32 = model(ids).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(ids).logits
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), fp32, rtol=0.05, atol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.train()
        model(ids, labels=ids).loss.backward()
    assert model.model.mixing.weight.grad.dtype == torch.float32
    assert torch.isfinite(model.model.mixing.weight.grad).all()


# ---------------------------------------------------------------------------------------------
# padding, labels, bad input


def test_padding_on_either_side_gives_the_unpadded_logits():
    model = tiny("mlp")
    gen = torch.Generator().manual_seed(6)
    seqs = [torch.randint(0, V, (n,), generator=gen) for n in (2, T + 2, 5)]
    width = max(len(s) for s in seqs)
    with torch.no_grad():
        alone = [model(s[None]).logits[0] for s in seqs]
        for side in ("left", "right"):
            ids = torch.zeros(len(seqs), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for b, s in enumerate(seqs):
                cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
                ids[b, cols], mask[b, cols] = s, 1
            logits = model(ids, attention_mask=mask).logits
            for b, s in enumerate(seqs):
                cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
                torch.testing.assert_close(logits[b, cols], alone[b], rtol=1e-4, atol=1e-4)
            last = model(ids, attention_mask=mask, logits_to_keep=1).logits[:, 0]
            if side == "left":  # generation's case: the last column is every row's last token
                torch.testing.assert_close(last, torch.stack([a[-1] for a in alone]), rtol=1e-4, atol=1e-4)


def test_labels_give_shifted_cross_entropy_with_ignore_index():
    model = tiny("mlp")
    ids = torch.randint(0, V, (3, T + 1), generator=torch.Generator().manual_seed(7))
    labels = ids.clone()
    labels[:, :3] = -100
    out = model(ids, labels=labels)
    logits = reference_logits(model, ids)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected, rtol=1e-4, atol=1e-4)
    assert out.logits.shape == (3, T + 1, V)


def test_token_ids_outside_the_vocabulary_are_a_clear_error():
    model = tiny("linear")
    with pytest.raises(ValueError, match=rf"token id {V}.*vocabulary \[0, {V}\)"):
        model(torch.tensor([[1, 2, V]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="labels contain ids outside"):
        model(torch.tensor([[1, 2]]), labels=torch.tensor([[1, V + 3]]))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.tensor([[1.0, 2.0]]))


@pytest.mark.slow
def test_a_compiled_training_step_checks_the_ids_in_the_graph_and_matches_eager():
    """Under torch.compile the id and label checks are assertions inside the graph (no graph break
    in the model's code, none in the chunk layout); the loss and the gradient are eager's."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model = tiny("linear")
    ids = torch.randint(0, V, (3, T))
    labels = ids.clone()
    labels[:, :3] = -100

    def step(model, ids, labels):
        loss = model(ids, labels=labels).loss
        loss.backward()
        return loss

    eager_loss = step(model, ids, labels)
    eager_grad = model.model.mixing.weight.grad.clone()
    model.zero_grad()
    compiled = torch.compile(partial(step, model))
    counters["graph_break"].clear()
    torch.testing.assert_close(compiled(ids, labels), eager_loss, rtol=1e-5, atol=1e-6)
    # what is left is the masked map's matmuls into column blocks of one output (out= a strided view)
    breaks = list(counters["graph_break"])
    assert not [b for b in breaks if "item()" in b or "nonzero" in b or "Dynamic shape" in b], breaks
    torch.testing.assert_close(model.model.mixing.weight.grad, eager_grad, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="input_ids contain token ids outside"):
        compiled(torch.tensor([[1, 2, V]]), torch.tensor([[1, 2, 3]]))
    with pytest.raises(RuntimeError, match="labels contain ids outside"):
        compiled(ids, labels.masked_fill(labels == labels[0, 5], V + 3))
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "cls,field,value",
    [
        (LinearLMConfig, "vocab_size", 0),
        (LinearLMConfig, "context_length", -3),
        (LinearLMConfig, "hidden_size", 2.5),
        (LinearLMConfig, "hidden_size", True),
        (LinearLMConfig, "mixing_chunk_size", 0),
        (LinearLMConfig, "pad_token_id", 50258),
        (LinearLMConfig, "eos_token_id", [1, -2]),
        (LinearLMConfig, "tie_word_embeddings", True),
        (MLPLMConfig, "num_mlp_layers", -1),
        (MLPLMConfig, "mlp_hidden_size", 0),
    ],
)
def test_invalid_config_values_name_the_field(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


# ---------------------------------------------------------------------------------------------
# transformers integration


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_auto_classes_and_save_load_roundtrip(kind, tmp_path):
    model = tiny(kind)
    ids = torch.randint(0, V, (2, T + 2), generator=torch.Generator().manual_seed(8))
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is type(model.config)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is type(model.model)
    with torch.no_grad():
        torch.testing.assert_close(base(ids).last_hidden_state, model.model(ids).last_hidden_state, rtol=0, atol=0)
    fresh = AutoModelForCausalLM.from_config(config)
    assert fresh.num_parameters() == model.num_parameters()


@pytest.mark.slow
def test_checkpoint_with_code_loads_without_hf_linear(tmp_path):
    model = tiny("mlp", num_mlp_layers=2)
    model.save_pretrained(tmp_path / "ckpt")
    for name in ("modeling_hf_linear.py", "masked_mixing.py", "configuration_hf_linear.py"):
        assert (tmp_path / "ckpt" / name).exists()
    ids = torch.randint(0, V, (2, T + 1), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = model(ids).logits
    torch.save({"ids": ids, "logits": expected}, tmp_path / "io.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_linear"] = None  # any `import hf_linear` now raises ImportError
        try:
            import hf_linear
            raise SystemExit("hf_linear is importable")
        except ImportError:
            pass
        import torch
        from transformers import AutoModelForCausalLM
        io = torch.load({str(tmp_path / "io.pt")!r})
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            torch.testing.assert_close(model(io["ids"]).logits, io["logits"], rtol=0, atol=0)
        print("remote-code-ok")
        """
    )
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-code-ok" in result.stdout


# ---------------------------------------------------------------------------------------------
# generation


def greedy_reference(model, prompt: torch.Tensor, steps: int) -> list[int]:
    ids = prompt.clone()
    for _ in range(steps):
        nxt = reference_logits(model, ids[None])[0, -1].argmax()
        ids = torch.cat([ids, nxt[None]])
    return ids.tolist()


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_greedy_generation_matches_reference_beyond_the_window(kind):
    model = tiny(kind)
    prompt = torch.tensor([3, 1, 4])
    out = model.generate(prompt[None], max_new_tokens=2 * T, do_sample=False, pad_token_id=0)
    assert out[0].tolist() == greedy_reference(model, prompt, 2 * T)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_single_sequence_generation_reads_transposed_copies_that_follow_the_weights(kind, monkeypatch):
    """At batch 1, generate takes the decoding path (`decoding_step`), which reads transposed
    copies of the output layer and of the map's last row (a faster layout for a matrix-vector
    product): its tokens equal the dense reference's, the copies exist only during the call, and
    a later call follows weights changed in between."""
    from hf_linear.masked_mixing import DecodingLayouts

    model = tiny(kind)
    made = []
    real = DecodingLayouts.transposed
    monkeypatch.setattr(DecodingLayouts, "transposed", lambda self, *a: made.append(a[1]) or real(self, *a))
    prompt = torch.tensor([3, 1, 4, 1, 5])
    for _ in range(2):
        out = model.generate(prompt[None], max_new_tokens=2 * T, do_sample=False, pad_token_id=0)
        assert out[0].tolist() == greedy_reference(model, prompt, 2 * T)
        assert {"weight", "last_row"} <= set(made)  # the fast path was taken
        assert model.decoding_layouts is None and model.model.mixing.decoding_layouts is None  # dropped
        with torch.no_grad():  # weights changed in place, as an optimizer step would
            for parameter in model.parameters():
                parameter.mul_(-1.5)
        made.clear()


def test_generation_is_incremental(monkeypatch):
    """generate computes the last position only: the all-positions path is never taken."""
    model = tiny("mlp")

    def all_positions(*args, **kwargs):
        raise AssertionError("generate recomputed all positions")

    monkeypatch.setattr(type(model.model.mixing), "forward", all_positions)
    out = model.generate(torch.tensor([[1, 2]]), max_new_tokens=T + 3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, T + 5)


def test_batched_left_padded_generation_equals_one_by_one():
    model = tiny("mlp")
    prompts = [[5, 6, 7, 8, 9], [1], [2, 3, 4, 5, 6, 7, 8, 9]]  # the last is longer than T
    width = max(map(len, prompts))
    pad = 0
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    batched = model.generate(ids, attention_mask=mask, max_new_tokens=T + 2, do_sample=False, pad_token_id=pad)
    for b, p in enumerate(prompts):
        single = model.generate(torch.tensor([p]), max_new_tokens=T + 2, do_sample=False, pad_token_id=pad)
        assert batched[b, width:].tolist() == single[0, len(p) :].tolist()
        assert batched[b, width:].tolist() == greedy_reference(model, torch.tensor(p), T + 2)[len(p) :]


def test_sampling_options():
    model = tiny("linear")
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    kwargs = dict(do_sample=True, max_new_tokens=T + 4, pad_token_id=0)
    torch.manual_seed(0)
    a = model.generate(prompt, temperature=0.7, top_k=5, top_p=0.9, num_return_sequences=3, **kwargs)
    torch.manual_seed(0)
    b = model.generate(prompt, temperature=0.7, top_k=5, top_p=0.9, num_return_sequences=3, **kwargs)
    assert a.shape == (6, 3 + T + 4) and torch.equal(a, b)
    assert torch.equal(a[:3, :3], prompt[:1].expand(3, -1))
    # top_k=1 sampling is greedy decoding
    torch.manual_seed(1)
    k1 = model.generate(prompt, top_k=1, **kwargs)
    greedy = model.generate(prompt, do_sample=False, max_new_tokens=T + 4, pad_token_id=0)
    assert torch.equal(k1, greedy)
    # a near-zero temperature is greedy, a huge one is not (always)
    torch.manual_seed(2)
    cold = model.generate(prompt, temperature=1e-4, **kwargs)
    assert torch.equal(cold, greedy)


def test_text_generation_pipeline(shared_data_dir):
    from transformers import AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(shared_data_dir / "gpt2-tokenizer")
    torch.manual_seed(0)
    model = LinearLMForCausalLM(
        LinearLMConfig(vocab_size=len(tokenizer), context_length=8, hidden_size=8, eos_token_id=tokenizer.eos_token_id)
    ).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    out = generator("Once upon a", max_new_tokens=12, do_sample=False)
    text = out[0]["generated_text"]
    assert text.startswith("Once upon a") and len(text) > len("Once upon a")
    ids = tokenizer("Once upon a", return_tensors="pt").input_ids
    expected = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert text == tokenizer.decode(expected[0], skip_special_tokens=True)
