"""Independent references for the CoT arithmetic formats: plain schoolbook loops on digit lists
(least significant digit first) and a check per format that an example's tokens follow them.
Shared by test_arithmetic_formats.py and test_arithmetic_data.py."""

from __future__ import annotations

import random

from hf_linear.data.arithmetic import answer_of
from hf_linear.data.arithmetic.formats import parity_running

# ----------------------------------------------------------------------------- schoolbook loops (no library code)


def lsb_digits(x: int) -> list[int]:
    digits = []
    while True:
        x, digit = divmod(x, 10)
        digits.append(digit)
        if x == 0:
            return digits


def padded(digits: list[int], width: int) -> list[int]:
    assert len(digits) <= width
    return digits + [0] * (width - len(digits))


def schoolbook_sum(x: list[int], y: list[int], width: int) -> list[int]:
    x, y = padded(x, width), padded(y, width)
    result, carry = [], 0
    for i in range(width):
        carry, digit = divmod(x[i] + y[i] + carry, 10)
        result.append(digit)
    assert carry == 0
    return result


def schoolbook_product(a: list[int], b: list[int]) -> list[int]:
    result = [0] * (len(a) + len(b))
    for j, b_digit in enumerate(b):
        carry = 0
        for i, a_digit in enumerate(a):
            carry, result[i + j] = divmod(result[i + j] + a_digit * b_digit + carry, 10)
        result[j + len(a)] += carry
    return result


def msb_text(lsb: list[int]) -> str:
    return " ".join(str(d) for d in reversed(lsb))


def random_operand(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def segments(tokens: list[str]) -> list[list[str]]:
    """Tokens split at every "="."""
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == "=":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def split_on(tokens: list[str], separator: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def ints(tokens: list[str]) -> list[int]:
    return [int(t) for t in tokens]


# ----------------------------------------------------------------------------- checks per format


def check_multiplication(tokens: list[str], a: int, b: int, cot: str) -> None:
    a_lsb, b_lsb = lsb_digits(a), lsb_digits(b)
    n, m = len(a_lsb), len(b_lsb)
    product = schoolbook_product(a_lsb, b_lsb)
    parts = segments(tokens)
    assert parts[0] == ["[BOS]", *msb_text(a_lsb).split(), "x", *msb_text(b_lsb).split()]
    assert " ".join(parts[-1]) == msb_text(product) == answer_of(tokens)
    if cot == "direct":
        assert len(parts) == 2
    elif cot == "paper":
        assert len(parts) == 5
        expansions = " ".join(parts[1])
        expected = " x ".join(
            "( " + " + ".join(f"{d} x 1" + " 0" * i for i, d in enumerate(x)) + " )" for x in (a_lsb, b_lsb)
        )
        assert expansions == expected
        pair_terms = split_on(parts[2], "+")
        partials = split_on(parts[3], "+")
        assert len(pair_terms) == len(partials) == n * m
        total = [0]
        for index, (i, j) in enumerate((i, j) for i in range(n) for j in range(m)):
            assert pair_terms[index] == [f"{a_lsb[i]}x{b_lsb[j]}", "x", "1", *["0"] * i, "x", "1", *["0"] * j]
            partial = ints(partials[index])[::-1]  # to lsb
            assert len(partial) == i + j + 2
            assert partial == padded([0] * (i + j) + schoolbook_product([a_lsb[i]], [b_lsb[j]]), i + j + 2)
            total = schoolbook_sum(total, partial, n + m)
        assert total == product  # the partials add up to the answer
    elif cot == "lsb":
        assert len(parts) == 3
        steps = split_on(parts[1], "+")
        assert len(steps) == m
        running = [0]
        for j, step in enumerate(steps):
            assert step[:n] == [f"{a_digit}x{b_lsb[j]}" for a_digit in a_lsb]
            partial = ints(step[n : 2 * n + 1])
            assert partial == schoolbook_product(a_lsb, [b_lsb[j]])
            running = schoolbook_sum(running, [0] * j + partial, n + j + 1)
            if j:
                assert ints(step[2 * n + 1 :]) == running
            else:
                assert len(step) == 2 * n + 1
        assert padded(running, n + m) == product
    else:
        raise AssertionError(cot)


def check_addition(tokens: list[str], a: int, b: int, cot: str) -> None:
    a_lsb, b_lsb = lsb_digits(a), lsb_digits(b)
    width = max(len(a_lsb), len(b_lsb))
    total = schoolbook_sum(a_lsb, b_lsb, width + 1)
    parts = segments(tokens)
    assert parts[0] == ["[BOS]", *msb_text(a_lsb).split(), "+", *msb_text(b_lsb).split()]
    assert " ".join(parts[-1]) == msb_text(total) == answer_of(tokens)
    if cot == "direct":
        assert len(parts) == 2
        return
    assert len(parts) == 3
    columns = ints(parts[1])
    assert len(columns) == 2 * width
    carry = 0
    a_pad, b_pad = padded(a_lsb, width), padded(b_lsb, width)
    for i in range(width):
        column = a_pad[i] + b_pad[i] + carry
        assert columns[2 * i : 2 * i + 2] == [column // 10, column % 10]
        carry = column // 10


def check_parity(tokens: list[str], bits: str, every: int) -> None:
    parts = segments(tokens)
    assert parts[0] == ["[BOS]", *bits]
    parity, checkpoints = 0, []
    for position, bit in enumerate(bits, start=1):
        parity ^= bit == "1"
        if position % every == 0 and position < len(bits):
            checkpoints.append(str(int(parity)))
    assert parts[-1] == [str(int(parity))] == [answer_of(tokens)]
    if checkpoints:
        assert parts[1:-1] == [checkpoints]
    else:
        assert len(parts) == 2  # k = n: no CoT


def check_parity_threshold(tokens: list[str], bits: str, every: int) -> None:
    """Every written token is the claimed linear-threshold function of tokens written before it."""
    parts = segments(tokens)
    assert len(parts) == 3 and parts[0] == ["[BOS]", *bits]
    written_bits = ints(parts[0][1:])  # read the bits back from the tokens
    written = ints(parts[1]) + ints(parts[2])  # a1 p1 a2 p2 ... a_last p_last
    blocks = [written_bits[start : start + every] for start in range(0, len(bits), every)]
    assert len(written) == 2 * len(blocks) and len(parts[2]) == 1
    previous, xor, checkpoints = 0, 0, []  # p_0 = 0
    for t, block in enumerate(blocks):
        a, p = written[2 * t], written[2 * t + 1]
        total = previous + sum(block)  # p_{t-1} (a written token, or 0) + this block's bits
        assert a == sum(1 for j in range(1, every + 2) if total >= 2 * j)  # a sum of thresholds
        if every == 1:
            assert a == int(previous == 1 and block == [1])  # AND(p_{t-1}, b_t)
        assert p == int(total - 2 * a >= 1)
        for bit in block:
            xor ^= bit
        assert p == xor  # the parity so far
        checkpoints.append(str(p))
        previous = p
    assert parts[2] == [str(xor)] == [answer_of(tokens)]
    running = segments(parity_running(bits, every))  # p_t is running's checkpoint r_t
    assert checkpoints[:-1] == (running[1] if len(running) == 3 else [])
