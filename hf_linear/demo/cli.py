"""`hf-linear demo`: an interactive app (Gradio) over one or more checkpoints.

    hf-linear demo CHECKPOINT [CHECKPOINT ...] [--host 127.0.0.1] [--port 7860]
                   [--arithmetic JSON | --program JSON]

Arithmetic and program checkpoints (their task read from training_config.yaml, or given with
--arithmetic as for `hf-linear eval`, or --program for a compiled program) get one box per
input, the Chain of Thought streamed token by token and shaded by probability, the answer
checked against the true result (a program's: its reference trace) and the first step that
departs from the reference. Any checkpoint takes free text (prompt, temperature, top-k). "Why
this token" splits a generated token's logit into one part per earlier (position, token): exact
for a LinearLM, an approximation for an MLPLM; beside it the block-norm heatmap of `inspect`.

The server listens on 127.0.0.1 (this machine only) unless --host says otherwise.
Needs the demo extra: pip install -e ".[demo]".
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from hf_linear.data.sources import section_from_json
from hf_linear.run_files import TRAINING_CONFIG

DEFAULT_HOST = "127.0.0.1"


def parse_arguments(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="hf-linear demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoints", nargs="+", metavar="CHECKPOINT", help="hf-linear checkpoint directories or Hub repo ids"
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument(
        "--arithmetic",
        help=f"JSON task for the checkpoints without a {TRAINING_CONFIG}, e.g. "
        '\'{"task": "multiplication", "digits": [4, 4], "cot": "lsb"}\'',
    )
    parser.add_argument(
        "--program",
        help=f"JSON compiled program for the checkpoints without a {TRAINING_CONFIG}, "
        'e.g. \'{"program": "multiplication", "size": 10000}\'',
    )
    parser.add_argument(
        "--trust-program-code",
        action="store_true",
        help=f"import a module:function program named by --program or a checkpoint's {TRAINING_CONFIG} "
        "(importing runs its code; default: shipped programs only)",
    )
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_arguments(argv)
    if importlib.util.find_spec("gradio") is None:
        parser.exit(
            2, f'{parser.prog}: error: the demo needs gradio: pip install -e ".[demo]" (or pip install gradio)\n'
        )
    from hf_linear.demo.app import build_demo, launch
    from hf_linear.demo.models import load_demo_model

    try:
        tasks = {
            option: section_from_json(option, text)
            for option, text in (("arithmetic", args.arithmetic), ("program", args.program))
        }
        demo = build_demo(
            [
                load_demo_model(checkpoint, **tasks, trust_program_code=args.trust_program_code)
                for checkpoint in dict.fromkeys(args.checkpoints)
            ]
        )
    except ValueError as error:  # not a checkpoint, not hf-linear, a bad task: one line, no traceback
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    launch(demo, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
