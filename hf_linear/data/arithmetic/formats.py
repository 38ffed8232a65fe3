"""Chain-of-Thought (CoT) arithmetic formats, written plainly: one example -> its list of word tokens.

These small pure functions are the readable reference of every format (the paper made visible);
`hf_linear.data.arithmetic.registry` declares each format once, pairing its reference function
here with its fast numpy builder in `hf_linear.data.arithmetic.vectorised`, and tests check that
both write the same tokens. Lengths, prompt and answer lengths are derived from the formats, not
written again.

Convention shared by every format (the trainer and the evaluation rely on it)::

    [BOS] <operands> = <chain of thought, possibly containing more "="> = <answer>

* the prompt is everything up to and including the FIRST "=";
* the answer is the tokens after the LAST "=" (zero-padded as the format writes it);
* a dataset text is ``" ".join(tokens + ["[EOS]"])`` so that generation learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence

BOS, EOS, PAD, UNK = "[BOS]", "[EOS]", "[PAD]", "[UNK]"
EQUALS = "="
STEP_JOINER = "+"  # joins the steps (terms, rows) inside a CoT segment of the multiplication formats

# Largest supported operand size: n + m <= 18 digits keeps every product inside int64, which
# the vectorised builder uses; parity inputs are packed into one 64-bit word.
MAX_DIGITS = 9
MAX_BITS = 64
# The `threshold` parity CoT writes half-counts floor((p + s) / 2) <= floor((1 + k) / 2) as one
# digit token, so its step k may be at most 18.
MAX_THRESHOLD_EVERY = 18


# ---------------------------------------------------------------------------------------------
# Argument checks (shared with the dataset builder, so that errors read the same everywhere)


def check_every(n_bits: int, every: int | None, cot: str) -> int:
    """The step k (`every`) of a parity CoT that has one: 1 <= k <= n (`threshold`: also k <= 18)."""
    if every is None or isinstance(every, bool) or not isinstance(every, int):
        raise ValueError(f"every={every!r}: cot={cot!r} needs an integer k (one step every k bits)")
    if not 1 <= every <= n_bits:
        raise ValueError(f"every={every} must be between 1 and the number of bits n={n_bits}")
    if cot == "threshold" and every > MAX_THRESHOLD_EVERY:
        raise ValueError(
            f"every={every}: cot='threshold' writes half-counts as one digit, so k <= {MAX_THRESHOLD_EVERY}"
        )
    return every


def check_operand(name: str, x: int) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < 10**MAX_DIGITS:
        raise ValueError(f"{name}={x!r} must be a positive integer of at most {MAX_DIGITS} digits")


def check_bits(bits: str) -> None:
    if not isinstance(bits, str) or not 1 <= len(bits) <= MAX_BITS or set(bits) - {"0", "1"}:
        raise ValueError(f"bits={bits!r} must be a string of 1 to {MAX_BITS} characters '0'/'1'")


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
    check_operand("a", a)
    check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    a_lsb, b_lsb = digits_lsb(a, n), digits_lsb(b, m)

    def expansion(x_lsb: list[str]) -> list[str]:
        terms = [[digit, "x", *_power_of_ten(i)] for i, digit in enumerate(x_lsb)]
        return ["(", *_joined(terms, STEP_JOINER), ")"]

    pair_terms = [
        [f"{a_lsb[i]}x{b_lsb[j]}", "x", *_power_of_ten(i), "x", *_power_of_ten(j)] for i in range(n) for j in range(m)
    ]
    partials = [
        digits_msb(int(a_lsb[i]) * int(b_lsb[j]) * 10 ** (i + j), i + j + 2) for i in range(n) for j in range(m)
    ]
    return [
        BOS,
        *digits_msb(a, n),
        "x",
        *digits_msb(b, m),
        EQUALS,
        *expansion(a_lsb),
        "x",
        *expansion(b_lsb),
        EQUALS,
        *_joined(pair_terms, STEP_JOINER),
        EQUALS,
        *_joined(partials, STEP_JOINER),
        EQUALS,
        *digits_msb(a * b, n + m),
    ]


def multiplication_direct(a: int, b: int) -> list[str]:
    """No CoT: ``[BOS] a x b = a*b`` with the product zero-padded to n+m digits (19 tokens for 4x4)."""
    check_operand("a", a)
    check_operand("b", b)
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
    check_operand("a", a)
    check_operand("b", b)
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
    return [
        BOS,
        *digits_msb(a, n),
        "x",
        *digits_msb(b, m),
        EQUALS,
        *_joined(steps, STEP_JOINER),
        EQUALS,
        *digits_msb(a * b, n + m),
    ]


# ---------------------------------------------------------------------------------------------
# Addition


def addition_direct(a: int, b: int) -> list[str]:
    """No CoT: ``[BOS] a + b = a+b``, the sum zero-padded to max(n, m)+1 digits (16 tokens for 4+4)."""
    check_operand("a", a)
    check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    return [BOS, *digits_msb(a, n), "+", *digits_msb(b, m), EQUALS, *digits_msb(a + b, max(n, m) + 1)]


def addition_lsb(a: int, b: int) -> list[str]:
    """Column addition, least-significant column first.

    ``[BOS] a + b = t0 t1 ... t(L-1) = a+b`` with L = max(n, m); column i writes its sum
    t_i = a_i + b_i + carry_i (0..19) as two digits ``carry_{i+1} s_i``, so the carry into the next
    column is written just before it is needed. Length n + m + 5 + 3L: 25 tokens for 4+4.
    """
    check_operand("a", a)
    check_operand("b", b)
    n, m = len(str(a)), len(str(b))
    width = max(n, m)
    a_lsb, b_lsb = digits_lsb(a, width), digits_lsb(b, width)
    columns = []
    carry = 0
    for a_digit, b_digit in zip(a_lsb, b_lsb):
        column_sum = int(a_digit) + int(b_digit) + carry
        columns += digits_msb(column_sum, 2)
        carry = column_sum // 10
    return [BOS, *digits_msb(a, n), "+", *digits_msb(b, m), EQUALS, *columns, EQUALS, *digits_msb(a + b, width + 1)]


# ---------------------------------------------------------------------------------------------
# Parity


def _parity(bits: str) -> int:
    return bits.count("1") % 2


def parity_running(bits: str, every: int) -> list[str]:
    """Parity of n bits with the running parity written after every k = `every` bits.

    ``[BOS] x1 ... xn = r1 r2 ... rc = parity`` where r_t is the parity of the first t*k bits,
    for the c = ceil(n/k) - 1 checkpoints before the end (the last one would be the answer).
    With k = n there is no checkpoint and no CoT: ``[BOS] x1 ... xn = parity`` (one "=").
    The CoT length c = Theta(n/k) is the paper's length complexity of parity with k-bit steps.
    Length n + 3 + (c + 1 if c else 0): 15 tokens for n=8, k=2; 11 for k=8.
    """
    check_bits(bits)
    every = check_every(len(bits), every, "running")
    checkpoints = [str(_parity(bits[:end])) for end in range(every, len(bits), every)]
    chain = [*checkpoints, EQUALS] if checkpoints else []
    return [BOS, *bits, EQUALS, *chain, str(_parity(bits))]


def parity_direct(bits: str) -> list[str]:
    """No CoT: ``[BOS] x1 ... xn = parity`` (11 tokens for 8 bits)."""
    check_bits(bits)
    return parity_running(bits, every=len(bits))


def parity_threshold(bits: str, every: int) -> list[str]:
    """Parity as a chain of linear-threshold steps (the paper's universality construction).

    A linear next-token predictor scores every next token by a sum over the window's (position,
    token) pairs, so no single step can XOR two earlier tokens, and `running` is out of its reach.
    Here every new token IS a linear-threshold function of tokens already written. Step t reads
    the previous parity p_{t-1} (p_0 = 0, not written) and the t-th block of k = `every` bits,
    with sum s_t, and writes two tokens:

    * a_t = floor((p_{t-1} + s_t) / 2), the number of pairs among those k+1 terms. For k = 1 it
      is the gate a_t = AND(p_{t-1}, b_t) = [p_{t-1} + b_t >= 2]; for k > 1 a digit 0..ceil(k/2),
      sum_j [p_{t-1} + s_t >= 2j], which is the argmax over v of v * (p_{t-1} + s_t - 1/2) - v**2,
      a score linear in the window for every v;
    * p_t = p_{t-1} XOR (the block's bits) = [p_{t-1} + s_t - 2 a_t >= 1] (that sum is 0 or 1).

    ``[BOS] x1 ... xn = a1 p1 a2 p2 ... ac pc a_last = parity``: the pair (a_t, p_t) at each of
    the c = ceil(n/k) - 1 checkpoints where `running` writes r_t (and p_t = r_t), then the last
    block's a, "=", and its p: the parity. About twice the running CoT: n + 5 + 2c tokens (27 for
    n=8, k=1; 19 for n=8, k=2; n + 5 for k = n). What k trades: fewer steps (Theta(n/k), the
    paper's length complexity) for harder ones (each reads k+2 tokens and writes a count up to
    ceil(k/2); k <= 18 keeps that count one digit token). Only k = 1 has binary gates only.
    """
    check_bits(bits)
    every = check_every(len(bits), every, "threshold")
    chain, parity = [], 0
    for start in range(0, len(bits), every):
        total = parity + bits[start : start + every].count("1")
        pairs = total // 2
        parity = total - 2 * pairs
        chain += [str(pairs), str(parity)]
    *steps, last_pairs, answer = chain
    return [BOS, *bits, EQUALS, *steps, last_pairs, EQUALS, answer]


# ---------------------------------------------------------------------------------------------
# Prompt / answer / text


def text_of(tokens: Sequence[str]) -> str:
    """The dataset text of an example: its tokens and [EOS], space separated."""
    return " ".join([*tokens, EOS])


def prompt_of(tokens: Sequence[str]) -> str:
    """Everything up to and including the first "=", space separated."""
    tokens = list(tokens)
    if EQUALS not in tokens:
        raise ValueError(f"no '=' in {' '.join(tokens)!r}: not an arithmetic example")
    return " ".join(tokens[: tokens.index(EQUALS) + 1])


def segments_of(tokens: Sequence[str], step_names: Sequence[str] = ()) -> list[dict]:
    """The parts of an example, cut at each "=": the prompt (up to the first "="), the CoT steps
    (each up to and including its closing "="; named by `step_names` where given, else
    "cot step 1", ...), then the answer (the rest, [EOS] included). Positions are inclusive token
    indices: [{"name": "prompt", "start": 0, "end": 4}, ...]."""
    tokens = list(tokens)
    equals = [position for position, token in enumerate(tokens) if token == EQUALS]
    if not equals:
        return [{"name": "text", "start": 0, "end": len(tokens) - 1}]
    parts, start = [], 0
    for index, position in enumerate(equals):
        if index == 0:
            name = "prompt"
        else:
            name = step_names[index - 1] if index - 1 < len(step_names) else f"cot step {index}"
        parts.append({"name": name, "start": start, "end": position})
        start = position + 1
    if start < len(tokens):
        parts.append({"name": "answer", "start": start, "end": len(tokens) - 1})
    return parts


def answer_of(text_or_tokens: str | Sequence[str]) -> str:
    """The final answer of an example or of a generated text: the tokens after the last "=".

    Whatever follows the first [EOS] is ignored, and the answer stops at [EOS] or [PAD] (with
    left padding, [PAD]s come before [BOS] and do not matter). Returns "" when there is no "=":
    such an output has no answer and is scored wrong. The `evaluate` metric
    (evaluation/metrics/cot_exact_match) keeps a copy of this rule; a test pins them together.
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
