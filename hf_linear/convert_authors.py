"""Convert a state dict of the authors' `LinearModel` (github.com/emalach/LinearLM) to a checkpoint.

    hf-linear convert-authors STATE_DICT OUT_DIR --tokenizer NAME_OR_PATH [--context-length T]

The authors' model (models/linear_model.py), as saved by their training script with
``torch.save(model.state_dict(), ...)``::

    in_embedding   nn.Embedding(V, d)
    linear1        nn.Linear(T·d, T·d); forward: F.linear(x, W * mask) — block lower-triangular
                   mask, and NO bias (linear1.bias is in the state dict but unused)
    linear2        nn.Linear(d, d), only with activation="relu": relu(linear1) → linear2 → relu
    out_embedding  nn.Linear(d, V)
    mask           (T, T) bool, tril: output position i sees input positions j ≤ i

becomes LinearLMForCausalLM (no linear2) or MLPLMForCausalLM (num_mlp_layers=1, width d), with
the T(T+1)/2 unmasked blocks packed: our block W[i, j] is (d_in, d_out), the authors' dense
weight is (out, in) with the window flattened position-major (index = position·d + feature), so

    W[i, j] = linear1.weight.view(T, d, T, d)[i, :, j, :].T          (j ≤ i)

Decisions, all exact with respect to the authors' forward:

* linear1.bias is dropped (masked-map bias = 0), as their forward never adds it;
  ``--use-linear1-bias`` keeps it, for forks of their code that do.
* Masked entries (j > i) of linear1.weight are dropped. The authors' forward multiplies them by
  0, so they keep their random init (decayed by AdamW) and are non-zero in real checkpoints: the
  converter WARNS with their size and goes on. ``--strict-mask`` makes a non-zero masked entry an
  error instead (for state dicts exported with the mask applied, where one reveals another layout).
  A saved ``mask`` that is not the block lower-triangular one is always an error.
* The tokenizer must have the authors' ids for ids < V. Their TinyStories tokenizer is GPT-2's
  plus a ``[PAD]`` (``add_special_tokens({'pad_token': '[PAD]'})``): a tokenizer with V - 1 tokens
  and no pad token gets that ``[PAD]`` added. ``--tokenizer arithmetic`` is hf-linear's arithmetic
  tokenizer, whose ids 0..116 are the paper's (the authors' product vocabulary) plus [EOS] and
  [PAD]: extra tokens beyond V get zero embeddings and output rows with weight 0 and bias -1e4,
  so the model never predicts them and its distribution over the V original tokens is unchanged.

Untrusted files: the state dict is read with ``torch.load(..., weights_only=True)`` (tensors and
plain containers only; pickled objects are refused, never run) or from ``.safetensors``.
After saving, the converter checks the saved model against the authors' forward computed from
the state dict itself (``--no-verify`` skips it).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file

from hf_linear.checkpoints import load_model, load_named_tokenizer
from hf_linear.data.arithmetic.tokenizer import build_arithmetic_tokenizer
from hf_linear.model_types import LINEAR_LM, MLP_LM, MODEL_TYPES

logger = logging.getLogger(__name__)

PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
NEVER_PREDICTED_BIAS = -1e4  # output bias of tokens the authors' model does not have


class MaskedEntryWarning(UserWarning):
    """Non-zero entries of linear1.weight above the block diagonal (unused by the authors' forward)."""


# ----------------------------------------------------------------------------------- reading


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a state dict file, without unpickling arbitrary objects."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except SafetensorError as error:
            raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt: {error})") from None
    try:
        loaded = _torch_load_weights_only(path)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: refusing to load: it holds more than tensors and plain containers "
            f"(torch.load(weights_only=True) rejected it: {str(error).splitlines()[0]})"
        ) from None
    except (EOFError, RuntimeError) as error:  # empty, truncated, or not written by torch.save
        reason = str(error).splitlines()[0] if str(error) else "the file ends before its first record"
        raise ValueError(f"{path} is not a torch.save file ({reason})") from None
    for key in ("state_dict", "model"):  # a training checkpoint wrapping the state dict
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path}: not a state dict (a mapping of names to tensors)")
    return dict(loaded)


def _torch_load_weights_only(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:  # not a zip archive (legacy torch.save format): no mmap
        if "mmap" not in str(error):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in state_dict.items():
        for prefix in PREFIXES:
            while name.startswith(prefix):
                name = name[len(prefix) :]
        out[name] = tensor
    return out


# ----------------------------------------------------------------------------------- converting


def convert_state_dict(
    state_dict: dict[str, torch.Tensor],
    context_length: int | None = None,
    *,
    use_linear1_bias: bool = False,
    strict_mask: bool = False,
) -> tuple[dict, dict]:
    """The authors' state dict → (config fields, hf-linear state dict of LinearLM/MLPLMForCausalLM).

    Raises ValueError on anything that is not the authors' formulation with consistent shapes.
    """
    sd = _strip_prefixes(state_dict)
    required = ["in_embedding.weight", "linear1.weight", "out_embedding.weight", "out_embedding.bias"]
    missing = [k for k in required if k not in sd]
    if missing:
        raise ValueError(f"not a state dict of the authors' LinearModel: missing {', '.join(missing)}")
    has_mlp = "linear2.weight" in sd
    known = set(required) | {"linear1.bias", "mask"} | ({"linear2.weight", "linear2.bias"} if has_mlp else set())
    unknown = sorted(set(sd) - known)
    if unknown:
        raise ValueError(f"unexpected entries for the authors' LinearModel: {', '.join(unknown[:5])}")

    vocab_size, d = sd["in_embedding.weight"].shape
    dense = sd["linear1.weight"].float()  # (T·d out, T·d in)
    if dense.ndim != 2 or dense.shape[0] != dense.shape[1] or dense.shape[0] % d:
        raise ValueError(f"linear1.weight has shape {tuple(dense.shape)}: expected (T·d, T·d) with d={d}")
    T = dense.shape[0] // d
    if context_length is not None and context_length != T:
        raise ValueError(
            f"--context-length {context_length} does not match the state dict: "
            f"linear1 is {dense.shape[0]} = T·d with d={d}, so T={T}"
        )
    if sd["out_embedding.weight"].shape != (vocab_size, d) or sd["out_embedding.bias"].shape != (vocab_size,):
        raise ValueError("out_embedding does not map d → V like in_embedding")
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool))  # [i, j]: output i sees input j ≤ i
    if "mask" in sd and not torch.equal(sd["mask"].bool().reshape(T, T), lower):
        raise ValueError(
            "the saved mask is not block lower-triangular (output i sees inputs j ≤ i): "
            "another formulation than the authors' LinearModel"
        )

    # What the authors' forward multiplies by 0: block row i, input positions j > i (row by row,
    # so that the paper-size weights are not copied)
    masked_max = max((float(dense[i * d : (i + 1) * d, (i + 1) * d :].abs().max()) for i in range(T - 1)), default=0.0)
    if masked_max > 0:
        kept_max = max(float(dense[i * d : (i + 1) * d, : (i + 1) * d].abs().max()) for i in range(T))
        message = (
            f"linear1.weight has non-zero entries above the block diagonal (max |w| = {masked_max:.3g}, "
            f"unmasked max {kept_max:.3g}); the authors' forward masks them out, so they are dropped"
        )
        if strict_mask:
            raise ValueError(message + " (--strict-mask)")
        warnings.warn(message, MaskedEntryWarning, stacklevel=2)

    # (out, in) dense → blocks [i, j] of shape (d_in, d_out)
    blocks = dense.view(T, d, T, d).permute(0, 2, 3, 1)  # [i, j, d_in, d_out]
    rows, cols = torch.tril_indices(T, T)  # row-major: (0,0), (1,0), (1,1), (2,0), … = our packing
    packed = blocks[rows, cols].contiguous()  # (T(T+1)/2, d, d)

    bias = torch.zeros(T * d)
    if use_linear1_bias:
        if "linear1.bias" not in sd:
            raise ValueError("--use-linear1-bias: the state dict has no linear1.bias")
        bias = sd["linear1.bias"].float()
    elif "linear1.bias" in sd:
        logger.info("linear1.bias dropped: the authors' forward does not add it")

    converted = {
        "model.embed_tokens.weight": sd["in_embedding.weight"].float(),
        "model.mixing.weight": packed,
        "model.mixing.bias": bias.reshape(T, d),
        "lm_head.weight": sd["out_embedding.weight"].float(),
        "lm_head.bias": sd["out_embedding.bias"].float(),
    }
    config = {
        "model_type": MLP_LM if has_mlp else LINEAR_LM,
        "vocab_size": vocab_size,
        "context_length": T,
        "hidden_size": d,
    }
    if has_mlp:
        if sd["linear2.weight"].shape != (d, d):
            raise ValueError(f"linear2.weight has shape {tuple(sd['linear2.weight'].shape)}, expected ({d}, {d})")
        converted["model.mlp.layers.0.weight"] = sd["linear2.weight"].float()
        converted["model.mlp.layers.0.bias"] = sd.get("linear2.bias", torch.zeros(d)).float()
        config.update(num_mlp_layers=1, mlp_hidden_size=None)
    return config, converted


def authors_logits(state_dict: dict[str, torch.Tensor], ids: torch.Tensor, linear1_bias: bool = False) -> torch.Tensor:
    """The authors' forward on ids (B, T), computed from their state dict: (B, T, V).

    Block row by block row (no masked (T·d)² copy), for the check after converting.
    linear1_bias adds linear1.bias after the masked map (the --use-linear1-bias variant).
    """
    sd = _strip_prefixes(state_dict)
    emb = sd["in_embedding.weight"].float()
    d = emb.shape[1]
    T = sd["linear1.weight"].shape[0] // d
    dense = sd["linear1.weight"].float().view(T, d, T * d)  # [i, d_out, (j, d_in)]
    x = emb[ids].reshape(ids.shape[0], T * d)
    y = torch.stack([x[:, : (i + 1) * d] @ dense[i, :, : (i + 1) * d].T for i in range(T)], dim=1)  # (B, T, d)
    if linear1_bias:
        y = y + sd["linear1.bias"].float().view(T, d)
    if "linear2.weight" in sd:
        linear2_bias = sd["linear2.bias"].float() if "linear2.bias" in sd else None
        y = F.relu(F.linear(F.relu(y), sd["linear2.weight"].float(), linear2_bias))
    return F.linear(y, sd["out_embedding.weight"].float(), sd["out_embedding.bias"].float())


# ----------------------------------------------------------------------------------- tokenizer


def load_tokenizer(name_or_path: str):
    """--tokenizer: "arithmetic" (hf-linear's arithmetic tokenizer), else a directory or Hub id."""
    if name_or_path == "arithmetic":
        return build_arithmetic_tokenizer()
    return load_named_tokenizer(name_or_path, f"--tokenizer {name_or_path!r}")


def fit_tokenizer(tokenizer, vocab_size: int):
    """The tokenizer, with the authors' [PAD] added when that is the one token it lacks."""
    if len(tokenizer) == vocab_size - 1 and tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})  # as the authors' training script does
        logger.info(
            "added [PAD] (id %d) to the tokenizer, as the authors' training script does", tokenizer.pad_token_id
        )
    if len(tokenizer) < vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens, the model {vocab_size}: not the tokenizer "
            "the model was trained with"
        )
    return tokenizer


# ----------------------------------------------------------------------------------- the whole conversion


def convert(
    state_dict_path: str | Path,
    out_dir: str | Path,
    tokenizer: str,
    context_length: int | None = None,
    *,
    use_linear1_bias: bool = False,
    strict_mask: bool = False,
    verify: bool = True,
):
    """Convert and save (safetensors, config, code, tokenizer) to out_dir; returns the model."""

    state_dict = load_state_dict(state_dict_path)
    fields, weights = convert_state_dict(
        state_dict, context_length, use_linear1_bias=use_linear1_bias, strict_mask=strict_mask
    )
    V = fields["vocab_size"]
    tok = fit_tokenizer(load_tokenizer(tokenizer), V)

    model_type = MODEL_TYPES[fields.pop("model_type")]
    config = model_type.config_class(**fields)
    with torch.device("meta"):
        model = model_type.causal_lm_class(config)
    model.load_state_dict(weights, strict=True, assign=True)
    model.eval()

    if len(tok) > V:  # tokens the authors' model does not have: never predicted
        model.resize_token_embeddings(len(tok), mean_resizing=False)
        with torch.no_grad():
            model.model.embed_tokens.weight[V:] = 0
            model.lm_head.weight[V:] = 0
            model.lm_head.bias[V:] = NEVER_PREDICTED_BIAS
        logger.info("tokens %d..%d of the tokenizer are new: zero embeddings, never predicted", V, len(tok) - 1)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, name, getattr(tok, name))
    model.config.validate_hf_linear()

    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    if verify:
        verify_conversion(state_dict, out_dir, use_linear1_bias=use_linear1_bias)
    return model


def verify_conversion(state_dict, out_dir, *, use_linear1_bias: bool = False, num_sequences: int = 2) -> None:
    """Saved model vs the authors' forward on random full windows; ValueError if they differ."""

    model = load_model(str(out_dir)).eval()
    sd = _strip_prefixes(state_dict)
    V, T = sd["in_embedding.weight"].shape[0], model.config.context_length
    ids = torch.randint(0, V, (num_sequences, T), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model(ids).logits[..., :V]
        expected = authors_logits(sd, ids, linear1_bias=use_linear1_bias)
    scale = expected.abs().max().item() + 1e-6
    error = (got - expected).abs().max().item()
    if error > 1e-4 * scale + 1e-5:
        raise ValueError(f"converted model differs from the authors' forward (max |Δlogit| = {error:.3g})")
    logger.info("verified: logits match the authors' forward (max |Δ| = %.2g)", error)


# ----------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear convert-authors",
        description="Convert a state dict of the authors' LinearModel (github.com/emalach/LinearLM) to an "
        "hf-linear checkpoint (safetensors, config, code, tokenizer).",
    )
    parser.add_argument(
        "state_dict", help="the authors' torch.save(model.state_dict()) file (.pt/.pth/.bin) or .safetensors"
    )
    parser.add_argument("out_dir", help="directory to write the checkpoint to")
    parser.add_argument(
        "--tokenizer",
        required=True,
        help="tokenizer directory or Hub id (e.g. roneneldan/TinyStories-33M), or 'arithmetic'",
    )
    parser.add_argument(
        "--context-length", type=int, default=None, help="T, checked against the state dict (default: read from it)"
    )
    parser.add_argument(
        "--use-linear1-bias", action="store_true", help="keep linear1.bias (the authors' forward does not use it)"
    )
    parser.add_argument(
        "--strict-mask",
        action="store_true",
        help="error (instead of a warning) on non-zero linear1 entries above the block diagonal",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the check against the authors' forward")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        model = convert(
            args.state_dict,
            args.out_dir,
            args.tokenizer,
            args.context_length,
            use_linear1_bias=args.use_linear1_bias,
            strict_mask=args.strict_mask,
            verify=not args.no_verify,
        )
    except (ValueError, OSError) as error:
        print(f"hf-linear convert-authors: error: {error}", file=sys.stderr)
        return 1
    config = model.config
    print(
        f"wrote {args.out_dir}: {config.model_type}, T={config.context_length}, d={config.hidden_size}, "
        f"V={config.vocab_size}, {model.num_parameters() / 1e6:.1f}M parameters"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
