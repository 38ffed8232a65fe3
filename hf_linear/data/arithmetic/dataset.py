"""Deprecated module path, kept only while other modules move to the package imports:
use ``from hf_linear.data.arithmetic import ...`` (see the package docstring). To be removed."""

from hf_linear.data.arithmetic import (  # noqa: F401
    CITATION,
    ArithmeticSpec,
    ArithmeticStream,
    build_arguments_of,
    build_arithmetic_dataset,
    push_arithmetic_dataset_to_hub,
    render_dataset_card,
    save_arithmetic_dataset,
)
