"""The interactive demo: `hf-linear demo CHECKPOINT ...` (a Gradio app) and its Space.

* `models`     — a checkpoint for the demo: model, tokenizer, and its task if it has one
* `tasks`      — what the Arithmetic tab computes: an arithmetic format or a compiled program, one interface
* `generation` — streamed generation with each token's probability; the CoT checked against the reference
* `render`     — HTML of the shaded tokens, the verdict and the attribution table; the block-norm heatmap
* `app`        — the Gradio Blocks (the only module that imports gradio)
* `space`      — the files of a Hugging Face Space that runs the demo, and their upload
* `cli`        — `hf-linear demo`

Nothing here imports gradio at import time except `app`, so `import hf_linear` never needs it;
install it with `pip install -e ".[demo]"`. The attribution math is `hf_linear.analysis.attribution`.
"""
