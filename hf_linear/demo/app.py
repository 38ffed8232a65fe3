"""The Gradio app of `hf-linear demo`: arithmetic or a compiled program with a checked CoT, free
text, and why each token.

The Arithmetic tab talks to the checkpoint's task (`demo.tasks`: an arithmetic format or a
compiled program) only through its interface: input boxes, prompt, check. Every handler turns
bad input into a message on the page (`render.message_html`), never a traceback: inputs are
checked by the task (as `arithmetic_prompt` / `program_prompt` check them), prompts must hold a
token, and anything that still fails during generation is reported in one line. This is the
only module of hf_linear that imports gradio.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from hf_linear.analysis.attribution import attribute_token
from hf_linear.data.arithmetic.formats import EQUALS
from hf_linear.demo.generation import stream_tokens
from hf_linear.demo.models import DemoModel
from hf_linear.demo.render import (
    attribution_html,
    figure_image,
    heatmap_figure,
    message_html,
    tokens_html,
    verdict_html,
)
from hf_linear.paper import STORY_PROMPT
from hf_linear.run_files import TRAINING_CONFIG

ANSWER_SLACK = 4  # tokens generated past the reference's length: enough to see a model that does not stop
INPUT_BOXES = 4  # input boxes built once (Gradio components are fixed); each task shows as many as it has
BOX_IDS = ("hfl-a", "hfl-b", "hfl-c", "hfl-d")
CSS = """
.hfl-tokens { font-family: ui-monospace, monospace; line-height: 2.1; white-space: pre-wrap; }
.hfl-prompt { color: #6b7280; margin-right: 0.4em; }
.hfl-token { padding: 2px 3px; border-radius: 3px; }
.hfl-missing { outline: 2px dashed #dc2626; }
.hfl-legend, .hfl-method { color: #6b7280; font-size: 0.85em; margin-top: 0.3em; }
.hfl-approximation { color: #b45309; font-weight: 600; }
.hfl-verdict { font-weight: 600; padding: 0.4em 0.6em; border-radius: 4px; margin-bottom: 0.3em; }
.hfl-correct { background: #dcfce7; color: #166534; }
.hfl-wrong { background: #fee2e2; color: #991b1b; }
.hfl-message { padding: 0.4em 0.6em; border-radius: 4px; background: #fef3c7; color: #92400e; }
.hfl-attribution { font-family: ui-monospace, monospace; font-size: 0.85em; border-collapse: collapse; }
.hfl-attribution td, .hfl-attribution th { padding: 1px 8px; text-align: right; }
.hfl-attribution td:nth-child(2) { text-align: center; }
.hfl-attribution td:last-child { width: 120px; }
.hfl-strong td { font-weight: 700; }
.hfl-bias td, .hfl-sum td { border-top: 1px solid #d1d5db; }
.hfl-bar { height: 0.7em; }
#hfl-attribution { max-height: 560px; overflow-y: auto; }
"""


@dataclass(frozen=True)
class Generation:
    """The last generation of a session: what "Why this token" explains."""

    model_name: str
    prompt_ids: list[int]
    tokens: list  # GeneratedToken

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + [token.id for token in self.tokens]


def token_choices(tokens) -> list[tuple[str, str]]:
    return [(f"#{k}  {token.text.strip()}  (p={token.probability:.2f})", str(k)) for k, token in enumerate(tokens)]


def default_choice(tokens, departure: int | None = None) -> str | None:
    """The token to explain first: the first one off the reference, else the first answer token,
    else the last one."""
    if not tokens:
        return None
    if departure is not None and departure < len(tokens):
        return str(departure)
    texts = [token.text.strip() for token in tokens]
    if EQUALS in texts:
        last_equals = len(texts) - 1 - texts[::-1].index(EQUALS)
        if last_equals + 1 < len(texts):
            return str(last_equals + 1)
    return str(len(tokens) - 1)


def input_boxes(demo_model: DemoModel) -> list[dict]:
    """Label, placeholder and visibility of each of the INPUT_BOXES boxes for a checkpoint's task
    (a text model keeps two plain boxes: its handler says what to do instead)."""
    task = demo_model.task
    fields = [(field.label, field.placeholder) for field in task.fields] if task else [("a", ""), ("b", "")]
    boxes = [
        {"label": label, "placeholder": placeholder, "visible": True} for label, placeholder in fields[:INPUT_BOXES]
    ]
    return boxes + [{"label": "", "placeholder": "", "visible": False}] * (INPUT_BOXES - len(boxes))


class DemoApp:
    """The handlers, over the loaded checkpoints (by name)."""

    def __init__(self, models: list[DemoModel]):
        if not models:
            raise ValueError("the demo needs at least one checkpoint")
        for model in models:  # refused at start, not on the first click
            if model.task is not None and len(model.task.fields) > INPUT_BOXES:
                raise ValueError(
                    f"{model.name}: its task has {len(model.task.fields)} inputs; the demo shows at most {INPUT_BOXES}"
                )
        self.models = {model.name: model for model in models}

    def model(self, name: str | None) -> DemoModel:
        return self.models.get(name) or next(iter(self.models.values()))

    # -- arithmetic ------------------------------------------------------------------------

    def box_updates(self, name: str):
        return tuple(gr.update(**box) for box in input_boxes(self.model(name)))

    def run_arithmetic(self, name: str, *values: str):
        """Yields (tokens HTML, verdict HTML, token choices, generation) while the CoT streams;
        `values` are the texts of the input boxes, in order."""
        demo_model = self.model(name)
        task = demo_model.task
        if task is None:
            yield self._failed(
                "this checkpoint was trained on neither arithmetic nor a program (no such task "
                f"in its {TRAINING_CONFIG}): use the Text tab"
            )
            return
        try:
            prompt_text = task.prompt(values)
        except ValueError as error:
            yield self._failed(str(error))
            return
        tokenizer = demo_model.tokenizer
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        prompt = tokenizer.decode(prompt_ids)
        budget = task.continuation_length + ANSWER_SLACK
        tokens = []
        try:
            for tokens in stream_tokens(
                demo_model.model, tokenizer, prompt_ids, max_new_tokens=budget, do_sample=False
            ):
                yield tokens_html(prompt, tokens), "", gr.update(), None
        except Exception as error:  # an unexpected failure of generation: one line on the page
            yield self._failed(f"generation failed: {type(error).__name__}: {error}")
            return
        check = task.check(values, [token.text.strip() for token in tokens])
        choices = gr.update(choices=token_choices(tokens), value=default_choice(tokens, check.departure))
        yield (
            tokens_html(prompt, tokens, check.departure),
            verdict_html(check),
            choices,
            Generation(name, prompt_ids, tokens),
        )

    # -- text ------------------------------------------------------------------------------

    def run_text(self, name: str, prompt: str, temperature: float, top_k: float, max_new_tokens: float):
        """Yields (tokens HTML, message HTML, token choices, generation) while the text streams."""
        demo_model = self.model(name)
        tokenizer = demo_model.tokenizer
        prompt_ids = tokenizer(prompt or "", add_special_tokens=False)["input_ids"] if (prompt or "").strip() else []
        if not prompt_ids:
            yield self._failed("the prompt is empty: write a few words to continue")
            return
        sampling = {"do_sample": False}
        if temperature and temperature > 0:
            sampling = {"do_sample": True, "temperature": float(temperature), "top_k": int(top_k or 0)}
        prompt_text, tokens = tokenizer.decode(prompt_ids), []
        try:
            for tokens in stream_tokens(
                demo_model.model, tokenizer, prompt_ids, max_new_tokens=int(max_new_tokens), **sampling
            ):
                yield tokens_html(prompt_text, tokens), "", gr.update(), None
        except Exception as error:
            yield self._failed(f"generation failed: {type(error).__name__}: {error}")
            return
        choices = gr.update(choices=token_choices(tokens), value=default_choice(tokens))
        yield tokens_html(prompt_text, tokens), "", choices, Generation(name, prompt_ids, tokens)

    @staticmethod
    def _failed(text: str):
        return "", message_html(text), gr.update(choices=[], value=None), None

    # -- why this token --------------------------------------------------------------------

    def explain(self, generation: Generation | None, choice: str | None):
        """(attribution HTML, heatmap image) of the chosen generated token."""
        if generation is None or choice in (None, ""):
            return message_html("generate something first, then choose one of its tokens", "info"), None
        demo_model = self.model(generation.model_name)
        ids, k = generation.ids, int(choice)
        index = len(generation.prompt_ids) + k  # the token's place in the whole sequence
        attribution = attribute_token(demo_model.model, ids, index - 1, ids[index])

        def text(token_id):
            return demo_model.tokenizer.decode([token_id]).strip() or repr(demo_model.tokenizer.decode([token_id]))

        start, T = attribution.input_positions[0], demo_model.model.config.context_length
        labels = [text(i) for i in ids[start : start + T]]
        title = f"block norms of the masked map; framed: row {attribution.map_row}, which wrote #{k}"
        return attribution_html(attribution, text), figure_image(
            heatmap_figure(demo_model.block_norms, labels, attribution.map_row, title)
        )


def build_demo(models: list[DemoModel]) -> gr.Blocks:
    """The Blocks of the demo over loaded checkpoints (launch with `launch`)."""
    app = DemoApp(models)
    first = models[0]
    with gr.Blocks(title="hf-linear demo") as demo:
        gr.Markdown(
            "# hf-linear: linear and MLP next-token predictors\nMalach, *Auto-Regressive Next-Token "
            "Predictors are Universal Learners* (ICML 2024): a model that only maps a window of tokens "
            "linearly (or through a small MLP) to the next token, writing a Chain of Thought."
        )
        model_name = gr.Dropdown(
            [m.name for m in models], value=first.name, label="Checkpoint", visible=len(models) > 1
        )
        about = gr.Markdown(first.description)
        generation = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Arithmetic"):
                with gr.Row():
                    boxes = [gr.Textbox(**box, elem_id=box_id) for box, box_id in zip(input_boxes(first), BOX_IDS)]
                    compute = gr.Button("Compute", variant="primary", elem_id="hfl-compute")
                arithmetic_tokens = gr.HTML(elem_id="hfl-cot")
                verdict = gr.HTML(elem_id="hfl-verdict")
            with gr.Tab("Text"):
                prompt = gr.Textbox(label="Prompt", value=STORY_PROMPT, elem_id="hfl-prompt")
                with gr.Row():
                    temperature = gr.Slider(0.0, 2.0, value=0.5, step=0.05, label="Temperature (0: greedy)")
                    top_k = gr.Slider(0, 200, value=40, step=1, label="Top-k (0: off)")
                    max_new_tokens = gr.Slider(1, 256, value=48, step=1, label="Max new tokens")
                write = gr.Button("Generate", variant="primary", elem_id="hfl-generate")
                text_tokens = gr.HTML(elem_id="hfl-text")
                text_message = gr.HTML(elem_id="hfl-text-message")
        gr.Markdown(
            "## Why this token\nThe share of every earlier (position, token) in the chosen token's logit "
            "and in its margin over the runner-up: exact for a LinearLM, an approximation for an MLPLM."
        )
        token = gr.Dropdown(choices=[], label="Generated token to explain", interactive=True, elem_id="hfl-token")
        with gr.Row():
            attribution = gr.HTML(elem_id="hfl-attribution")
            heatmap = gr.Image(
                label="Block norms ‖W[i, j]‖ (as hf-linear inspect; the selected row framed)",
                type="pil",
                elem_id="hfl-heatmap",
                interactive=False,
            )

        model_name.change(
            lambda name: (app.model(name).description, *app.box_updates(name)), model_name, [about, *boxes]
        )
        compute.click(app.run_arithmetic, [model_name, *boxes], [arithmetic_tokens, verdict, token, generation])
        write.click(
            app.run_text,
            [model_name, prompt, temperature, top_k, max_new_tokens],
            [text_tokens, text_message, token, generation],
        )
        token.change(app.explain, [generation, token], [attribution, heatmap])
    return demo


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, **kwargs):
    """Start the app. host None: Gradio's GRADIO_SERVER_NAME or loopback (a Space sets 0.0.0.0)."""
    return demo.launch(server_name=host, server_port=port, css=CSS, **kwargs)
