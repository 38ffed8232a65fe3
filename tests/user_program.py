"""A program of a user's own, as README shows it: max(a, b) in 20 lines. The tests import it by
name (`"my_programs:maximum"`, from a copy of this file) and as code."""

from __future__ import annotations

from hf_linear.data.programs import ProgramBuilder
from hf_linear.data.programs.compiler import ZERO


def maximum(limit):
    """max(a, b): the comparison chain, then per bit a lookup of the tuple (a > b, a_i, b_i)."""
    bits = (limit - 1).bit_length()
    program = ProgramBuilder(f"max-{limit}")
    a = program.number("a", limit, width=bits)
    program.token(",")
    b = program.number("b", limit, width=bits)
    program.begin_cot()
    greater = ZERO
    for i in range(bits):
        greater = program.gate([(a[i], 2), (b[i], -2), (greater, 1)], 1, "greater")
    outputs = [program.apply(lambda g, x, y: x if g == "1" else y, greater, a[i], b[i]) for i in range(bits)]
    program.begin_answer()
    for position in outputs:
        program.copy(position)
    return program.build()
