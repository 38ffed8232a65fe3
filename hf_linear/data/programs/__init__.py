"""Programs compiled into Chain-of-Thought data that a linear next-token predictor can learn.

* `compiler`    — `Step` (one CoT token = the argmax of a sum of per-(position, token) terms),
                  `ProgramBuilder` (gates, full adders, tuples, lookups lowered into steps),
                  `Program` (the fixed trace layout; `run` executes the steps on whole batches);
* `library`     — the shipped programs (parity, addition, comparison, multiplication, Turing
                  machines), each beside a plain-loop reference of its trace;
* `certificate` — a LinearLM whose weights ARE the compiled steps: 100% by construction, checked
                  through `generate`;
* `dataset`     — inputs and the hash split, `build_program_dataset`, `ProgramStream`, the
                  tokenizer, the card and the prompt helper.
"""

from hf_linear.data.programs.compiler import Program, ProgramBuilder, Step
from hf_linear.data.programs.library import MACHINES, PROGRAMS, TuringMachine, compile_program

__all__ = ["MACHINES", "PROGRAMS", "Program", "ProgramBuilder", "Step", "TuringMachine", "compile_program"]
