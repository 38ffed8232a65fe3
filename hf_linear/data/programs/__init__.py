"""Programs compiled into Chain-of-Thought data that a linear next-token predictor can learn.

* `compiler`    — `Step` (one CoT token = the argmax of a sum of per-(position, token) terms),
                  `ProgramBuilder` (gates, full adders, tuples, lookups lowered into steps; the
                  text format's reserved tokens refused), `Program` (the fixed trace layout; `run`
                  executes the steps on whole batches of checked inputs; `describe` its length and
                  width);
* `library`     — the shipped programs (parity, addition, subtraction, comparison, multiplication,
                  Turing machines, a finite automaton), each beside a plain-loop reference of its
                  trace; `turing_machine_program` compiles a machine of your own, checking that it
                  halts and keeps to its tape, `automaton_program` an automaton of your own;
* `proof`       — `prove`: every step, on every combination of the values its reads can hold,
                  in exact arithmetic (all inputs, any size);
* `fusion`      — `optimize`: a shorter CoT, steps fused into composite tokens wherever one linear
                  step (found by LP, verified exactly) still writes them; `unfuse` decodes back;
* `certificate` — a LinearLM whose weights ARE the compiled steps: `certify` checks its
                  `generate`d traces token for token on held-out data;
* `dataset`     — inputs and the hash split, `build_program_dataset`, `ProgramStream`, the
                  tokenizer, the card and the prompt helper.
"""

from hf_linear.data.programs.compiler import Program, ProgramBuilder, Step
from hf_linear.data.programs.fusion import optimize, unfuse
from hf_linear.data.programs.library import (
    AUTOMATA,
    MACHINES,
    PROGRAMS,
    FiniteAutomaton,
    TuringMachine,
    automaton_program,
    compile_program,
    turing_machine_program,
)
from hf_linear.data.programs.proof import Proof, prove

__all__ = [
    "AUTOMATA",
    "MACHINES",
    "PROGRAMS",
    "FiniteAutomaton",
    "Program",
    "ProgramBuilder",
    "Proof",
    "Step",
    "TuringMachine",
    "automaton_program",
    "compile_program",
    "optimize",
    "prove",
    "turing_machine_program",
    "unfuse",
]
