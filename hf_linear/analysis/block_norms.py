"""A look inside a trained model: which input positions each output position reads.

    hf-linear inspect CHECKPOINT [--out PNG] [--example "prompt text"] [--top K]

The masked map of a LinearLM / MLPLM sends input position j to output position i ≥ j through
one d×d block W[i, j] (j ≤ i); its Frobenius norm ‖W[i, j]‖_F says how much position i can read
of position j. The heatmap shows these T(T+1)/2 norms (the packed weight
`model.model.mixing.weight`, shape (T(T+1)/2, d, d), holds W[i, j] at index i(i+1)/2 + j), with
the "=" tokens of an example drawn as dashed lines: they cut the sequence into the prompt, the
steps of the Chain of Thought and the answer. For an arithmetic checkpoint the example is built
from its training_config.yaml; `--example` gives another (a prompt is completed greedily by the
model). For each output position the K input positions it reads most are printed and saved as
JSON beside the PNG.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.colors import LogNorm

from hf_linear.atomic import write_json_atomically
from hf_linear.checkpoints import load_model, load_tokenizer
from hf_linear.data.arithmetic.formats import EOS, segments_of
from hf_linear.data.sources import arithmetic_spec
from hf_linear.model_types import is_hf_linear, type_names
from hf_linear.output_dirs import check_output_file
from hf_linear.run_files import read_training_config

TOKEN_LABELS_UP_TO = 100  # windows up to this length get their tokens as tick labels


def block_norms(model) -> torch.Tensor:
    """(T, T) matrix of ‖W[i, j]‖_F for j ≤ i, NaN above the diagonal (no block there)."""
    mixing = model.base_model.mixing
    T = mixing.context_length
    norms = torch.full((T, T), float("nan"))
    # tril_indices lists (i, j), j ≤ i, row by row: the order of the packed blocks i(i+1)/2 + j
    rows, columns = torch.tril_indices(T, T)
    norms[rows, columns] = torch.linalg.matrix_norm(mixing.weight.detach().float(), ord="fro")
    return norms


def example_from_config(checkpoint: Path, seed: int = 0) -> str | None:
    """The full text (prompt, CoT, answer, [EOS]) of one example of the checkpoint's arithmetic
    data, read from its training_config.yaml; None for other data."""
    config = read_training_config(checkpoint) if Path(checkpoint).is_dir() else None
    if config is None:
        return None
    spec = arithmetic_spec(config.get("dataset") or {})
    if spec is None:
        return None
    rng = random.Random(seed)
    if spec.bits:
        operands = ("".join(rng.choice("01") for _ in range(spec.digits[0])),)
    else:
        operands = tuple(rng.randrange(10 ** (d - 1), 10**d) for d in spec.digits)
    return " ".join(spec.format.tokens(operands, spec.every) + [EOS])


def example_tokens(model, tokenizer, text: str) -> list[str]:
    """The tokens of an example as the model reads them; a text without [EOS] (a prompt) is
    first completed by greedy generation, up to the window."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    window = model.config.context_length
    if EOS not in tokenizer.convert_ids_to_tokens(ids[0]) and ids.shape[1] < window:
        with torch.no_grad():
            ids = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=window - ids.shape[1], do_sample=False
            )
    return tokenizer.convert_ids_to_tokens(ids[0][:window])


def top_inputs(norms: torch.Tensor, k: int) -> list[list[tuple[int, float]]]:
    """For each output position i: its k input positions j ≤ i of largest block norm."""
    result = []
    for i in range(norms.shape[0]):
        row = norms[i, : i + 1]
        values, positions = torch.topk(row, min(k, i + 1))
        result.append([(int(j), float(v)) for j, v in zip(positions, values)])
    return result


def draw_block_norms(figure, axes, norms: torch.Tensor, label: str) -> None:
    """The (T, T) block norms on a log colour scale (masked blocks white), with a colour bar."""
    finite = norms[torch.isfinite(norms) & (norms > 0)]
    color_scale = LogNorm(vmin=float(finite.min()), vmax=float(finite.max())) if len(finite) else None
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    image = axes.imshow(norms.numpy(), cmap=cmap, norm=color_scale, interpolation="nearest")
    figure.colorbar(image, ax=axes, label=label)


def draw_heatmap(norms: torch.Tensor, tokens: list[str], title: str, out: Path) -> None:
    T = norms.shape[0]
    figure, axes = plt.subplots(figsize=(7.5, 6.5), dpi=100)
    draw_block_norms(figure, axes, norms, "block norm ‖W[i, j]‖_F (log scale)")
    for part in segments_of(tokens)[:-1] if tokens else []:
        boundary = part["end"] + 0.5  # after each "="
        axes.axvline(boundary, color="red", linestyle="--", linewidth=0.8)
        axes.axhline(boundary, color="red", linestyle="--", linewidth=0.8)
    if tokens and T <= TOKEN_LABELS_UP_TO:
        labels = tokens + [""] * (T - len(tokens))
        axes.set_xticks(range(T), labels, rotation=90, fontsize=max(3, 8 - T // 20))
        axes.set_yticks(range(T), labels, fontsize=max(3, 8 - T // 20))
    axes.set_xlabel("input position j (token read)")
    axes.set_ylabel("output position i (predicts token i+1)")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)


def inspect_checkpoint(
    checkpoint: str | Path, out: str | Path | None = None, example: str | None = None, top: int = 3, quiet: bool = False
) -> dict:
    """Heatmap PNG and per-position JSON of a checkpoint; returns the JSON summary."""
    checkpoint = Path(checkpoint)
    if top < 1:
        raise ValueError(f"--top must be >= 1 (input positions listed per output position), got {top}")
    out = check_output_file(out, "--out") if out else checkpoint / "block_norms.png"
    model = load_model(str(checkpoint)).eval()
    if not is_hf_linear(model.config.model_type):
        raise ValueError(
            f"inspect needs an hf-linear model ({type_names()}), {checkpoint} is {model.config.model_type}"
        )
    text = example if example is not None else example_from_config(checkpoint)
    tokens = example_tokens(model, load_tokenizer(str(checkpoint)), text) if text else []
    norms = block_norms(model)
    token_at = lambda position: tokens[position] if position < len(tokens) else None  # noqa: E731
    summary = {
        "checkpoint": str(checkpoint),
        "model_type": model.config.model_type,
        "context_length": model.config.context_length,
        "hidden_size": model.config.hidden_size,
        "example": " ".join(tokens) if tokens else None,
        "segments": segments_of(tokens) if tokens else [],
        "positions": [
            {
                "i": i,
                "token": token_at(i),
                "top_inputs": [{"j": j, "token": token_at(j), "norm": norm} for j, norm in reads],
            }
            for i, reads in enumerate(top_inputs(norms, top))
        ],
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        draw_heatmap(
            norms,
            tokens,
            f"{model.config.model_type} {checkpoint.name}\nblock norms of the masked map "
            f"(T={norms.shape[0]}, d={model.config.hidden_size})",
            out,
        )
        write_json_atomically(out.with_suffix(".json"), summary)
    except OSError as error:  # e.g. a read-only file system
        raise ValueError(f"--out {out}: cannot be written ({error.strerror or error})") from None
    if not quiet:
        for position in summary["positions"]:
            reads = ", ".join(f"{r['j']} {r['token'] or ''} ({r['norm']:.3g})" for r in position["top_inputs"])
            print(f"{position['i']:4d} {position['token'] or '':>5} reads {reads}")
        print(f"\nwrote {out} and {out.with_suffix('.json')}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-linear inspect", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help=f"an hf-linear checkpoint directory ({type_names(' or ')})")
    parser.add_argument("--out", help="PNG to write (default: CHECKPOINT/block_norms.png); the JSON goes beside it")
    parser.add_argument("--example", help="example text or prompt (default: one from the checkpoint's arithmetic data)")
    parser.add_argument("--top", type=int, default=3, help="input positions listed per output position (default 3)")
    args = parser.parse_args(argv)
    try:
        inspect_checkpoint(args.checkpoint, args.out, args.example, args.top)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
