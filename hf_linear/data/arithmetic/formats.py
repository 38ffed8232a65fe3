"""Chain-of-Thought (CoT) arithmetic formats: one example -> its list of word tokens.

These small pure functions are the readable reference of every format; the fast, vectorised
dataset builder in `hf_linear.data.arithmetic.dataset` is tested to produce exactly the same tokens.

Convention shared by every format (the trainer and the evaluation rely on it)::

    [BOS] <operands> = <chain of thought, possibly containing more "="> = <answer>

* the prompt is everything up to and including the FIRST "=";
* the answer is the tokens after the LAST "=" (zero-padded as the format writes it);
* a dataset text is ``" ".join(tokens + ["[EOS]"])`` so that generation learns to stop.

Tasks and formats (`FORMATS`), with their length for 4x4 digits (resp. 8 bits):

* multiplication of an n-digit by an m-digit number (leading digit nonzero):
  - ``paper``  the exact format of Malach (ICML 2024), 307 tokens for 4x4;
  - ``direct`` no CoT, ``a x b = product``, 19 tokens for 4x4;
  - ``lsb``    long multiplication, least-significant digit first, 80 tokens for 4x4.
* addition of an n-digit and an m-digit number:
  - ``direct`` ``a + b = sum``, 16 tokens for 4+4;
  - ``lsb``    the column sums, least-significant column first, 25 tokens for 4+4.
* parity of n bits:
  - ``running`` the running parity after every k bits (k = n: no CoT), 15 tokens for n=8, k=2;
  - ``direct``  the answer alone (same as ``running`` with k = n), 11 tokens for n=8.

`sequence_length` gives the closed-form length of every format (tested against these functions).
"""

from __future__ import annotations

from collections.abc import Sequence

BOS, EOS, PAD, UNK = "[BOS]", "[EOS]", "[PAD]", "[UNK]"
EQUALS = "="

# task -> its CoT formats (the first one is the task's default)
FORMATS: dict[str, tuple[str, ...]] = {
    "multiplication": ("paper", "direct", "lsb"),
    "addition": ("lsb", "direct"),
    "parity": ("running", "direct"),
}

# Largest supported operand size: n + m <= 18 digits keeps every product inside int64, which
# the vectorised builder uses; parity inputs are packed into one 64-bit word.
MAX_DIGITS = 9
MAX_BITS = 64


# ---------------------------------------------------------------------------------------------
# Argument checks (shared with the dataset builder, so that errors read the same everywhere)


def check_task_and_format(task: str, cot: str) -> None:
    if task not in FORMATS:
        raise ValueError(f"task={task!r} is unknown; choose one of {sorted(FORMATS)}")
    if cot not in FORMATS[task]:
        raise ValueError(f"cot={cot!r} is not a format of task {task!r}; choose one of {list(FORMATS[task])}")


def check_digits(task: str, digits: int | Sequence[int]) -> tuple[int, ...]:
    """`digits` is (n, m) for multiplication/addition (a single n means n x n), (n,) for parity."""
    digits = (digits,) if isinstance(digits, int) else tuple(digits)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in digits):
        raise ValueError(f"digits={list(digits)} must be integers")
    if task == "parity":
        if len(digits) != 1 or not 1 <= digits[0] <= MAX_BITS:
            raise ValueError(f"digits={list(digits)}: parity takes one number of bits from 1 to {MAX_BITS}")
        return digits
    if len(digits) == 1:
        digits = digits * 2
    if len(digits) != 2 or not all(1 <= d <= MAX_DIGITS for d in digits):
        raise ValueError(
            f"digits={list(digits)}: {task} takes one or two operand sizes, each from 1 to {MAX_DIGITS} digits"
        )
    return digits


def check_every(n_bits: int, cot: str, every: int | None) -> int:
    """The k of the parity CoT: `running` needs 1 <= k <= n; `direct` is k = n."""
    if cot == "direct":
        if every not in (None, n_bits):
            raise ValueError(f"every={every} is only meaningful with cot='running' (direct means every={n_bits})")
        return n_bits
    if every is None or isinstance(every, bool) or not isinstance(every, int):
        raise ValueError(f"every={every!r}: cot='running' needs an integer k (running parity every k bits)")
    if not 1 <= every <= n_bits:
        raise ValueError(f"every={every} must be between 1 and the number of bits n={n_bits}")
    return every


def _check_operand(name: str, x: int) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < 10**MAX_DIGITS:
        raise ValueError(f"{name}={x!r} must be a positive integer of at most {MAX_DIGITS} digits")


# ---------------------------------------------------------------------------------------------
# Digits


def digits_msb(x: int, width: int) -> list[str]:
    """Digits of x, most significant first, zero-padded to `width`: (56, 3) -> ['0','5','6']."""
    text = str(x).zfill(width)
    if len(text) != width:
        raise ValueError(f"{x} does not fit in {width} digits")
    return list(text)


def digits_lsb(x: int, width: int) -> list[str]:
    """Digits of x, least significant first, zero-padded to `width`: (56, 3) -> ['6','5','0']."""
    return digits_msb(x, width)[::-1]


def _joined(groups: Sequence[list[str]], separator: str) -> list[str]:
    """[[a, b], [c]] joined by '+' -> [a, b, '+', c]."""
    tokens: list[str] = []
    for index, group in enumerate(groups):
        if index:
            tokens.append(separator)
        tokens.extend(group)
    return tokens


def _power_of_ten(exponent: int) -> list[str]:
    """10**e written digit by digit: 2 -> ['1', '0', '0']."""
    return ["1"] + ["0"] * exponent


# ---------------------------------------------------------------------------------------------
# Multiplication


def multiplication_paper(a: int, b: int) -> list[str]:
    """The paper's CoT (Malach 2024, sec. 5 and the authors' code), for an n-digit a and m-digit b.

    ``[BOS] a x b = ( a0 x 1 + a1 x 1 0 + ... ) x ( b0 x 1 + ... ) = <pair terms> = <partials> = a*b``
    with digits of the expansions least significant first; the n*m pair terms
    ``aixbj x 10^i x 10^j`` (i outer, j inner, joined digit-pair token first); the partial
    products ai*bj*10^(i+j) zero-padded to i+j+2 digits; the product zero-padded to n+m digits.
    307 tokens for 4x4.
    """
    _check_operand("a", a)
    _check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    a_lsb, b_lsb = digits_lsb(a, n), digits_lsb(b, m)

    def expansion(x_lsb: list[str]) -> list[str]:
        terms = [[digit, "x", *_power_of_ten(i)] for i, digit in enumerate(x_lsb)]
        return ["(", *_joined(terms, "+"), ")"]

    pair_terms = [
        [f"{a_lsb[i]}x{b_lsb[j]}", "x", *_power_of_ten(i), "x", *_power_of_ten(j)]
        for i in range(n)
        for j in range(m)
    ]
    partials = [
        digits_msb(int(a_lsb[i]) * int(b_lsb[j]) * 10 ** (i + j), i + j + 2) for i in range(n) for j in range(m)
    ]
    return [
        BOS, *digits_msb(a, n), "x", *digits_msb(b, m), EQUALS,
        *expansion(a_lsb), "x", *expansion(b_lsb), EQUALS,
        *_joined(pair_terms, "+"), EQUALS,
        *_joined(partials, "+"), EQUALS,
        *digits_msb(a * b, n + m),
    ]  # fmt: skip


def multiplication_direct(a: int, b: int) -> list[str]:
    """No CoT: ``[BOS] a x b = a*b`` with the product zero-padded to n+m digits (19 tokens for 4x4)."""
    _check_operand("a", a)
    _check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    return [BOS, *digits_msb(a, n), "x", *digits_msb(b, m), EQUALS, *digits_msb(a * b, n + m)]


def multiplication_lsb(a: int, b: int) -> list[str]:
    """Long multiplication with every number written least-significant digit first.

    ``[BOS] a x b = <step 0> + <step 1> + ... + <step m-1> = a*b``; step j handles digit b_j of b
    (least significant first) and writes

    * the n joined digit-pair tokens ``a0xbj a1xbj ... a(n-1)xbj`` (the digit products to look up),
    * the partial product P_j = a*b_j, n+1 digits, least significant first,
    * for j >= 1 the running sum S_j = sum_{k<=j} P_k*10^k, n+j+1 digits, least significant first
      (S_0 = P_0 is not repeated).

    Writing sums least-significant digit first makes every carry flow in generation order: each
    new digit depends on a few digits already written. The answer is written like the paper's:
    most significant first, zero-padded to n+m digits (the reverse of S_{m-1}).
    Length 2(n+m) + 2n + 5 + (m-1)(3n+3) + m(m-1)/2: 80 tokens for 4x4, 270 for 8x8.
    """
    _check_operand("a", a)
    _check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    a_lsb = digits_lsb(a, n)
    steps = []
    running_sum = 0
    for j, b_digit in enumerate(digits_lsb(b, m)):
        partial = a * int(b_digit)
        running_sum += partial * 10**j
        step = [f"{a_digit}x{b_digit}" for a_digit in a_lsb] + digits_lsb(partial, n + 1)
        if j > 0:
            step += digits_lsb(running_sum, n + j + 1)
        steps.append(step)
    return [BOS, *digits_msb(a, n), "x", *digits_msb(b, m), EQUALS, *_joined(steps, "+"), EQUALS,
            *digits_msb(a * b, n + m)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Addition


def addition_direct(a: int, b: int) -> list[str]:
    """No CoT: ``[BOS] a + b = a+b``, the sum zero-padded to max(n, m)+1 digits (16 tokens for 4+4)."""
    _check_operand("a", a)
    _check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    return [BOS, *digits_msb(a, n), "+", *digits_msb(b, m), EQUALS, *digits_msb(a + b, max(n, m) + 1)]


def addition_lsb(a: int, b: int) -> list[str]:
    """Column addition, least-significant column first.

    ``[BOS] a + b = t0 t1 ... t(L-1) = a+b`` with L = max(n, m); column i writes its sum
    t_i = a_i + b_i + carry_i (0..19) as two digits ``carry_{i+1} s_i``, so the carry into the next
    column is written just before it is needed. Length n + m + 5 + 3L: 25 tokens for 4+4.
    """
    _check_operand("a", a)
    _check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    width = max(n, m)
    a_lsb, b_lsb = digits_lsb(a, width), digits_lsb(b, width)
    columns = []
    carry = 0
    for a_digit, b_digit in zip(a_lsb, b_lsb):
        column_sum = int(a_digit) + int(b_digit) + carry
        columns += digits_msb(column_sum, 2)
        carry = column_sum // 10
    return [BOS, *digits_msb(a, n), "+", *digits_msb(b, m), EQUALS, *columns, EQUALS,
            *digits_msb(a + b, width + 1)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Parity


def _check_bits(bits: str) -> None:
    if not isinstance(bits, str) or not 1 <= len(bits) <= MAX_BITS or set(bits) - {"0", "1"}:
        raise ValueError(f"bits={bits!r} must be a string of 1 to {MAX_BITS} characters '0'/'1'")


def parity_running(bits: str, every: int) -> list[str]:
    """Parity of n bits with the running parity written after every k = `every` bits.

    ``[BOS] x1 ... xn = r1 r2 ... rc = parity`` where r_t is the parity of the first t*k bits,
    for the c = ceil(n/k) - 1 checkpoints before the end (the last one would be the answer).
    With k = n there is no checkpoint and no CoT: ``[BOS] x1 ... xn = parity`` (one "=").
    The CoT length c = Theta(n/k) is the paper's length complexity of parity with k-bit steps.
    Length n + 3 + (c + 1 if c else 0): 15 tokens for n=8, k=2; 11 for k=8.
    """
    _check_bits(bits)
    every = check_every(len(bits), "running", every)
    checkpoints = [str(bits[:end].count("1") % 2) for end in range(every, len(bits), every)]
    chain = [*checkpoints, EQUALS] if checkpoints else []
    return [BOS, *bits, EQUALS, *chain, str(bits.count("1") % 2)]


def parity_direct(bits: str) -> list[str]:
    """No CoT: ``[BOS] x1 ... xn = parity`` (11 tokens for 8 bits)."""
    _check_bits(bits)
    return parity_running(bits, every=len(bits))


# ---------------------------------------------------------------------------------------------
# Dispatch, lengths, prompt / answer / text


def example_tokens(task: str, cot: str, operands: tuple, every: int | None = None) -> list[str]:
    """Tokens of one example: operands are (a, b) for multiplication/addition, (bits,) for parity."""
    check_task_and_format(task, cot)
    if task == "parity":
        (bits,) = operands
        return parity_running(bits, check_every(len(bits), cot, every))
    a, b = operands
    return {
        ("multiplication", "paper"): multiplication_paper,
        ("multiplication", "direct"): multiplication_direct,
        ("multiplication", "lsb"): multiplication_lsb,
        ("addition", "direct"): addition_direct,
        ("addition", "lsb"): addition_lsb,
    }[task, cot](a, b)


def _expansion_length(n: int) -> int:
    # "(" + n terms "d x 1 0..0" of i+3 tokens + (n-1) "+" + ")"
    return 2 + sum(i + 3 for i in range(n)) + (n - 1)


def sequence_length(task: str, digits: int | Sequence[int], cot: str, every: int | None = None) -> int:
    """Number of tokens of every example of a format (without the appended [EOS])."""
    check_task_and_format(task, cot)
    digits = check_digits(task, digits)
    if task == "parity":
        (n,) = digits
        checkpoints = -(-n // check_every(n, cot, every)) - 1
        return n + 3 + (checkpoints + 1 if checkpoints else 0)
    n, m = digits
    prompt = n + m + 3  # [BOS] a x b =
    if task == "addition":
        width = max(n, m)
        return prompt + (2 * width + 1 if cot == "lsb" else 0) + width + 1
    if cot == "direct":
        return prompt + n + m
    if cot == "lsb":
        steps = (2 * n + 1) + sum(3 * n + 3 + j for j in range(1, m))  # step j >= 1 starts with "+"
        return prompt + steps + 1 + n + m
    pairs = n * m
    pair_terms = sum(i + j + 5 for i in range(n) for j in range(m)) + pairs - 1
    partials = sum(i + j + 2 for i in range(n) for j in range(m)) + pairs - 1
    return prompt + _expansion_length(n) + 1 + _expansion_length(m) + 1 + pair_terms + 1 + partials + 1 + n + m


def text_of(tokens: Sequence[str]) -> str:
    """The dataset text of an example: its tokens and [EOS], space separated."""
    return " ".join([*tokens, EOS])


def prompt_of(tokens: Sequence[str]) -> str:
    """Everything up to and including the first "=", space separated."""
    tokens = list(tokens)
    if EQUALS not in tokens:
        raise ValueError(f"no '=' in {' '.join(tokens)!r}: not an arithmetic example")
    return " ".join(tokens[: tokens.index(EQUALS) + 1])


def answer_of(text_or_tokens: str | Sequence[str]) -> str:
    """The final answer of an example or of a generated text: the tokens after the last "=".

    Whatever follows the first [EOS] is ignored, and the answer stops at [EOS] or [PAD] (with
    left padding, [PAD]s come before [BOS] and do not matter). Returns "" when there is no "=".
    """
    tokens = text_or_tokens.split() if isinstance(text_or_tokens, str) else list(text_or_tokens)
    if EOS in tokens:
        tokens = tokens[: tokens.index(EOS)]
    if EQUALS not in tokens:
        return ""
    last_equals = len(tokens) - 1 - tokens[::-1].index(EQUALS)
    answer = tokens[last_equals + 1 :]
    if PAD in answer:
        answer = answer[: answer.index(PAD)]
    return " ".join(answer)
