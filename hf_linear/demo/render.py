"""What the demo shows, as HTML strings and a matplotlib figure (no Gradio: testable alone)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from hf_linear.analysis.attribution import TokenAttribution
from hf_linear.analysis.block_norms import TOKEN_LABELS_UP_TO, draw_block_norms
from hf_linear.demo.generation import CotCheck, GeneratedToken


def message_html(text: str, kind: str = "error") -> str:
    """A one-line message on the page (bad input, an unusable checkpoint): never a traceback."""
    symbol = {"error": "⚠", "info": "ℹ"}[kind]
    return f'<div class="hfl-message hfl-{kind}">{symbol} {html.escape(text)}</div>'


def tokens_html(prompt: str, tokens: Sequence[GeneratedToken], departure: int | None = None) -> str:
    """The prompt in grey, then each generated token, as decoded (with its own spacing), shaded by
    its probability (darker = more probable, the value on hover); the first token off the
    reference framed in red."""
    parts = [f'<span class="hfl-prompt">{html.escape(prompt)}</span>']
    for index, token in enumerate(tokens):
        alpha = 0.08 + 0.62 * token.probability
        marked = index == departure
        style = f"background: rgba(37, 99, 235, {alpha:.2f});" + (" outline: 2px solid #dc2626;" if marked else "")
        title = f"#{index} p = {token.probability:.3f}" + (" (first departure from the reference)" if marked else "")
        parts.append(
            f'<span class="hfl-token" data-index="{index}" data-p="{token.probability:.4f}" '
            f'style="{style}" title="{html.escape(title)}">{html.escape(token.text)}</span>'
        )
    if departure is not None and departure == len(tokens):
        parts.append(
            '<span class="hfl-token hfl-missing" title="generation stopped here; the reference goes on">…</span>'
        )
    legend = (
        '<div class="hfl-legend">shade = the model\'s probability of each generated token '
        "(light: unsure, dark: sure; hover for the value)</div>"
    )
    return f'<div class="hfl-tokens">{"".join(parts)}</div>{legend}'


def verdict_html(check: CotCheck) -> str:
    """The answer against the true result, and where the CoT first leaves the reference format."""
    answer = check.answer or "(none)"
    if check.correct:
        head = f'<div class="hfl-verdict hfl-correct">✓ correct: answer {html.escape(answer)}; {html.escape(check.statement)}</div>'
    else:
        head = (
            f'<div class="hfl-verdict hfl-wrong">✗ wrong: answer {html.escape(answer)}, expected '
            f"{html.escape(check.expected_answer)}; {html.escape(check.statement)}</div>"
        )
    if check.departure is None:
        cot = "The chain of thought follows the reference format token for token."
    else:
        cot = (
            f"First departure from the reference at generated token #{check.departure} "
            f"({html.escape(check.departure_step)}): expected {html.escape(check.expected_token)}."
        )
    return f'{head}<div class="hfl-cot-check">{cot}</div>'


def _bar(value: float, scale: float) -> str:
    width = 0 if scale == 0 else min(100.0, 100.0 * abs(value) / scale)
    color = "#2563eb" if value >= 0 else "#dc2626"
    return f'<div class="hfl-bar" style="width:{width:.0f}%;background:{color}"></div>'


def attribution_html(attribution: TokenAttribution, token_text, strongest: int = 3) -> str:
    """The table of contributions: one row per input (position, token), then the bias, the sum
    and the model's own logit. `token_text(id)` names a token; the `strongest` inputs by
    |share in the margin| are bold."""
    a = attribution
    total = float(a.to_logit.sum()) + a.logit_bias
    margin_total = float(a.to_margin.sum()) + a.margin_bias
    scale = float(a.to_margin.abs().max()) if len(a.to_margin) else 0.0
    top = set(torch.topk(a.to_margin.abs(), min(strongest, len(a.to_margin))).indices.tolist())
    rows = []
    for k, (position, token_id) in enumerate(zip(a.input_positions, a.input_ids)):
        css = ' class="hfl-strong"' if k in top else ""
        rows.append(
            f"<tr{css}><td>{position}</td><td>{html.escape(token_text(token_id))}</td>"
            f"<td>{float(a.to_logit[k]):+.4f}</td><td>{float(a.to_margin[k]):+.4f}</td>"
            f"<td>{_bar(float(a.to_margin[k]), scale)}</td></tr>"
        )
    rows.append(
        f'<tr class="hfl-bias"><td colspan="2">bias (no input)</td><td>{a.logit_bias:+.4f}</td>'
        f"<td>{a.margin_bias:+.4f}</td><td></td></tr>"
    )
    rows.append(
        f'<tr class="hfl-sum"><td colspan="2">sum of the parts</td><td>{total:+.4f}</td><td>{margin_total:+.4f}</td><td></td></tr>'
    )
    rows.append(
        f'<tr class="hfl-sum"><td colspan="2">the model\'s logit / margin</td><td>{a.logit:+.4f}</td>'
        f"<td>{a.margin:+.4f}</td><td></td></tr>"
    )
    label = "exact" if a.exact else "approximation"
    head = (
        f'<div class="hfl-attribution-head">Why <b>{html.escape(token_text(a.token_id))}</b> at position '
        f"{a.position + 1} (output position {a.position}, row {a.map_row} of the masked map): logit "
        f"{a.logit:.4f}, margin {a.margin:.4f} over the runner-up <b>{html.escape(token_text(a.runner_up_id))}</b> "
        f'({a.runner_up_logit:.4f}).</div><div class="hfl-method hfl-{label}">{html.escape(a.method)}</div>'
    )
    table = (
        '<table class="hfl-attribution"><thead><tr><th>input position</th><th>token</th>'
        "<th>share in the logit</th><th>share in the margin</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return head + table


def heatmap_figure(norms: torch.Tensor, tokens: Sequence[str], row: int | None, title: str):
    """The block-norm heatmap of `hf-linear inspect` (log colour scale), with the row of the
    selected output position framed."""
    T = norms.shape[0]
    figure, axes = plt.subplots(figsize=(6.0, 5.2), dpi=80)
    draw_block_norms(figure, axes, norms, "‖W[i, j]‖_F (log)")
    if row is not None:
        axes.add_patch(Rectangle((-0.5, row - 0.5), row + 1, 1, fill=False, edgecolor="#dc2626", linewidth=2))
    if tokens and T <= TOKEN_LABELS_UP_TO:
        labels = list(tokens[:T]) + [""] * (T - min(T, len(tokens)))
        size = max(3, 8 - T // 20)
        axes.set_xticks(range(T), labels, rotation=90, fontsize=size)
        axes.set_yticks(range(T), labels, fontsize=size)
    axes.set_xlabel("input position j")
    axes.set_ylabel("output position i")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def figure_image(figure):
    """A matplotlib figure as a PIL image (closed afterwards: the app draws one per click)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
