"""What the Arithmetic tab computes: one small task interface, for arithmetic formats and compiled programs.

A task names its input boxes (`fields`), turns the raw text of those boxes into the prompt
(`prompt`, a ValueError naming the bad input otherwise), gives the reference continuation
(`reference`: CoT, answer, [EOS]) and checks a generated one against it (`check`, a `CotCheck`).
The app only talks to this interface, so a checkpoint trained on `arithmetic:` data and one
trained on a compiled `program:` (hf_linear.data.programs) share every handler.

Both kinds are read from a run's `dataset:` section (`task_from_dataset`) or given explicitly
(`--arithmetic` / `--program` JSON, `task_from_arguments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hf_linear.data.arithmetic import ArithmeticSpec, prompt_for
from hf_linear.data.arithmetic.formats import EOS, answer_of
from hf_linear.data.arithmetic.spec import SHOWN_IN_FULL, shown
from hf_linear.data.programs import Program, compile_program
from hf_linear.data.programs.compiler import BITS
from hf_linear.data.programs.dataset import program_prompt
from hf_linear.data.sources import (
    ArithmeticMixtureSource,
    ArithmeticSource,
    ProgramSource,
    ProgramStreamSource,
    arithmetic_spec,
)
from hf_linear.demo.generation import CotCheck, check_cot, departure_of

PROGRAM_COT = ("chain of thought",)  # a program's trace has one CoT segment, its steps "+"-joined


@dataclass(frozen=True)
class Field:
    """One input box of the Arithmetic tab."""

    label: str
    placeholder: str


class Task:
    """The interface the app uses; `values` are the raw texts of the boxes, in `fields` order."""

    fields: tuple[Field, ...]

    def describe(self) -> str:
        raise NotImplementedError

    def prompt(self, values: Sequence[str]) -> str:
        raise NotImplementedError

    def reference(self, values: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def check(self, values: Sequence[str], generated: Sequence[str]) -> CotCheck:
        raise NotImplementedError

    @property
    def continuation_length(self) -> int:
        """Tokens of the reference continuation (CoT, answer, [EOS]): the generation budget's base."""
        raise NotImplementedError


def _stripped(values: Sequence[str], count: int) -> tuple[str, ...]:
    """The first `count` box texts, stripped (the app passes every box, hidden ones too)."""
    return tuple((value or "").strip() for value in list(values)[:count])


# ----------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class ArithmeticTask(Task):
    """An arithmetic format of `hf_linear.data.arithmetic`: operands checked as `arithmetic_prompt`
    checks them, the answer against plain Python arithmetic."""

    spec: ArithmeticSpec

    @property
    def fields(self) -> tuple[Field, ...]:
        digits = self.spec.digits
        if self.spec.bits:
            return (Field(f"bits ({digits[0]} characters 0/1)", "e.g. " + ("10" * digits[0])[: digits[0]]),)
        return Field(f"a ({digits[0]} digits)", "e.g. 4321"), Field(f"b ({digits[1]} digits)", "e.g. 8765")

    def describe(self) -> str:
        return f"{self.spec.describe()}, CoT `{self.spec.cot}`"

    def operands(self, values: Sequence[str]) -> tuple:
        return self.spec.check_operands(_stripped(values, len(self.fields)))

    def prompt(self, values):
        return prompt_for(self.spec, self.operands(values))

    def reference(self, values):
        return self.check(values, []).reference

    def check(self, values, generated):
        return check_cot(self.spec, self.operands(values), [str(token) for token in generated])

    @property
    def continuation_length(self) -> int:
        return self.spec.length + 1 - self.spec.prompt_length


# ----------------------------------------------------------------------------- compiled programs


def bits_value(tokens: Sequence[str]) -> int | None:
    """The integer of binary answer tokens, least significant first (the shipped programs' order);
    None when they are not all bits."""
    if not tokens or any(token not in BITS for token in tokens):
        return None
    return sum(int(bit) << i for i, bit in enumerate(tokens))


@dataclass(frozen=True)
class ProgramTask(Task):
    """A compiled program (`hf_linear.data.programs`): one box per number input, the prompt of
    `program_prompt`, the answer and the CoT against the program's own trace."""

    program: Program

    @classmethod
    def create(cls, name: str, size: int, trust_program_code: bool = False, optimize: bool = False) -> ProgramTask:
        return cls(compile_program(name, size, trust_program_code=trust_program_code, optimize=optimize))

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(
            Field(f"{number.name} (0 – {number.limit - 1:,})", f"e.g. {number.limit * 3 // 7}")
            for number in self.program.inputs
        )

    def describe(self) -> str:
        inputs = ", ".join(f"{number.name} < {number.limit:,}" for number in self.program.inputs)
        return f"program `{self.program.name}` ({inputs}), CoT of {self.program.cot_length:,} tokens"

    def numbers(self, values: Sequence[str]) -> tuple:
        """The box texts as integers where they are plain digits; anything else is passed on as
        text, so that `program_prompt` refuses it with its own message. A long text beyond its
        input's largest number is refused here with that message, shortened (int() of a
        5,000-digit text raises Python's own error, and the message would quote all of it)."""
        numbers = []
        for number, text in zip(self.program.inputs, _stripped(values, len(self.program.inputs))):
            if len(text) > SHOWN_IN_FULL and len(text.lstrip("0")) > len(str(number.limit - 1)):
                raise ValueError(
                    f"{self.program.name}: {number.name}={shown(text)} must be an integer in [0, {number.limit})"
                )
            numbers.append(int(text) if text.isascii() and text.isdigit() else text)
        return tuple(numbers)

    def prompt(self, values):
        return program_prompt(self.program, None, *self.numbers(values))

    def full_reference(self, values) -> list[str]:
        self.prompt(values)  # validates the inputs, as the prompt does
        return self.program.tokens(*self.numbers(values)) + [EOS]

    def reference(self, values):
        return self.full_reference(values)[self.program.prompt_length :]

    def check(self, values, generated):
        full_reference = self.full_reference(values)
        generated = [str(token) for token in generated]
        expected_tokens = full_reference[self.program.answer_start : -1]  # without [EOS]
        departure, step = departure_of(full_reference, self.program.prompt_length, generated, PROGRAM_COT)
        answer, expected = answer_of(generated), " ".join(expected_tokens)
        value = bits_value(expected_tokens)
        return CotCheck(
            full_reference[self.program.prompt_length :],
            answer,
            expected,
            value,
            self.statement(values, expected_tokens, answer),
            answer == expected,
            departure,
            step,
        )

    def statement(self, values, expected_tokens: Sequence[str], answer: str) -> str:
        """E.g. "multiplication-10000 of a=4321, b=8765 = 37873565 (answer bits least significant
        first)"; the model's answer decoded too when it is a different binary number."""
        inputs = ", ".join(f"{number.name}={x}" for number, x in zip(self.program.inputs, self.numbers(values)))
        value = bits_value(expected_tokens)
        if value is None:  # not a binary answer (a Turing machine's tape): the tokens say it all
            return f"{self.program.name} of {inputs}: {' '.join(expected_tokens)}"
        statement = f"{self.program.name} of {inputs} = {value} (answer bits least significant first)"
        generated_value = bits_value(answer.split())
        if generated_value is not None and answer.split() != list(expected_tokens):
            statement += f"; the model's bits read {generated_value}"
        return statement

    @property
    def continuation_length(self) -> int:
        return self.program.length + 1 - self.program.prompt_length


# ----------------------------------------------------------------------------- where a task comes from

PROGRAM_KEYS = (ProgramSource.key, ProgramStreamSource.key)


def task_from_dataset(dataset: dict | None, trust_program_code: bool = False) -> Task | None:
    """The task of a run's `dataset:` section: a program, an arithmetic format (a mixture's first
    dataset: its held-out splits are the first one's), or None for language-model data. The
    section comes from a checkpoint's files: a "module:function" program is imported only when
    the user trusts it (`--trust-program-code`)."""
    dataset = dataset or {}
    for key in PROGRAM_KEYS:
        if isinstance(dataset.get(key), dict):
            return program_task(dataset[key], trust_program_code)
    mixture = dataset.get(ArithmeticMixtureSource.key)
    if isinstance(mixture, list) and mixture:
        dataset = {ArithmeticSource.key: mixture[0]}
    spec = arithmetic_spec(dataset)
    return ArithmeticTask(spec) if spec is not None else None


def program_task(arguments: dict, trust_program_code: bool = False) -> ProgramTask:
    """`{"program": ..., "size": ...}` (the keys of a `program:` dataset section; others ignored)."""
    if not isinstance(arguments, dict) or not {"program", "size"} <= set(arguments):
        raise ValueError(f"program task {arguments!r} needs the keys program and size")
    return ProgramTask.create(
        arguments["program"], arguments["size"], trust_program_code, arguments.get("optimize", False)
    )


def arithmetic_task(arguments: dict) -> ArithmeticTask:
    """`{"task": ..., "digits": ..., "cot": ..., "every": ...}` (the keys of `hf-linear eval --arithmetic`)."""
    if not isinstance(arguments, dict):
        raise ValueError(f"arithmetic task {arguments!r} must be a mapping of task, digits, cot (and every)")
    return ArithmeticTask(ArithmeticSpec.from_arguments(arguments))


def task_from_arguments(
    arithmetic: dict | None = None, program: dict | None = None, trust_program_code: bool = False
) -> Task | None:
    """The task given on the command line (--arithmetic or --program JSON), None when neither is."""
    if arithmetic is not None and program is not None:
        raise ValueError("give --arithmetic or --program, not both")
    if program is not None:
        return program_task(program, trust_program_code)
    return arithmetic_task(arithmetic) if arithmetic is not None else None
