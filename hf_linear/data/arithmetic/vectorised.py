"""The fast path: token ids of a whole block of examples at once, one numpy builder per format.

Every format is a fixed template for given digits: each position holds a constant token, a digit
or a digit pair of known origin. So a block of N examples is built column group by column group,
left to right, as (N, k) integer arrays, in the same order as the reference functions of
`hf_linear.data.arithmetic.formats` write their tokens (tests check both agree token for token).

Signatures: multiplication and addition builders take ``(a, b, n, m)`` (int64 operands and their
digit counts), parity builders ``(bits, n)`` or ``(bits, n, every)`` (bits packed into uint64,
the first bit most significant). All return (N, length) int32 ids, without [EOS].
"""

from __future__ import annotations

import numpy as np

from hf_linear.data.arithmetic.formats import BOS, EQUALS
from hf_linear.data.arithmetic.tokenizer import DIGIT_ID, PAIR_ID, TOKEN_TO_ID

_U64 = np.uint64


def digits_lsb(x: np.ndarray, width: int) -> np.ndarray:
    """(N, width) digits of x, least significant first."""
    return (x[:, None] // 10 ** np.arange(width, dtype=np.int64)) % 10


def digits_msb(x: np.ndarray, width: int) -> np.ndarray:
    """(N, width) digits of x, most significant first (zero-padded)."""
    return digits_lsb(x, width)[:, ::-1]


def bit_matrix(bits: np.ndarray, n: int) -> np.ndarray:
    """(N, n) bits, the first (most significant) bit first."""
    shifts = np.arange(n - 1, -1, -1, dtype=_U64)
    return ((bits[:, None] >> shifts) & _U64(1)).astype(np.int64)


class Columns:
    """Collects blocks of token-id columns of N examples, left to right."""

    def __init__(self, count: int):
        self.count = count
        self.blocks: list[np.ndarray] = []

    def tokens(self, *tokens: str) -> None:
        """The same tokens in every example."""
        if tokens:
            row = np.array([TOKEN_TO_ID[t] for t in tokens], dtype=np.int64)
            self.blocks.append(np.broadcast_to(row, (self.count, len(tokens))))

    def digits(self, digits: np.ndarray) -> None:
        """Digit tokens: (N,) or (N, k) digits."""
        self.blocks.append(DIGIT_ID + (digits[:, None] if digits.ndim == 1 else digits))

    def pairs(self, a_digits: np.ndarray, b_digits: np.ndarray) -> None:
        """Joined digit-pair tokens "AxB": (N, k) and (N, 1) digits, or (N, 1) and (N, 1)."""
        self.blocks.append(PAIR_ID + 10 * a_digits + b_digits)

    def ids(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=1).astype(np.int32)


def _operands_prompt(a: np.ndarray, operator: str, b: np.ndarray, n: int, m: int) -> Columns:
    """``[BOS] a <operator> b =``, both operands most significant digit first."""
    columns = Columns(len(a))
    columns.tokens(BOS)
    columns.digits(digits_msb(a, n))
    columns.tokens(operator)
    columns.digits(digits_msb(b, m))
    columns.tokens(EQUALS)
    return columns


def _answer(columns: Columns, result: np.ndarray, width: int) -> np.ndarray:
    """The result, most significant digit first, zero-padded to `width`; returns the ids."""
    columns.digits(digits_msb(result, width))
    return columns.ids()


# ---------------------------------------------------------------------------------------------
# Multiplication


def multiplication_paper_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    a_lsb, b_lsb = digits_lsb(a, n), digits_lsb(b, m)
    columns = _operands_prompt(a, "x", b, n, m)
    for index, x_lsb in enumerate((a_lsb, b_lsb)):  # ( d0 x 1 + d1 x 1 0 + ... )
        columns.tokens(*(["x"] if index else []), "(")
        for i in range(x_lsb.shape[1]):
            columns.tokens(*(["+"] if i else []))
            columns.digits(x_lsb[:, i])
            columns.tokens("x", "1", *["0"] * i)
        columns.tokens(")")
    columns.tokens(EQUALS)
    for i in range(n):  # aixbj x 10^i x 10^j
        for j in range(m):
            columns.tokens(*(["+"] if i or j else []))
            columns.pairs(a_lsb[:, i : i + 1], b_lsb[:, j : j + 1])
            columns.tokens("x", "1", *["0"] * i, "x", "1", *["0"] * j)
    columns.tokens(EQUALS)
    for i in range(n):  # ai*bj*10^(i+j), i+j+2 digits
        for j in range(m):
            columns.tokens(*(["+"] if i or j else []))
            product = a_lsb[:, i] * b_lsb[:, j]
            columns.digits(np.stack([product // 10, product % 10], axis=1))
            columns.tokens(*["0"] * (i + j))
    columns.tokens(EQUALS)
    return _answer(columns, a * b, n + m)


def multiplication_direct_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    return _answer(_operands_prompt(a, "x", b, n, m), a * b, n + m)


def multiplication_lsb_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    a_lsb, b_lsb = digits_lsb(a, n), digits_lsb(b, m)
    columns = _operands_prompt(a, "x", b, n, m)
    running_sum = np.zeros_like(a)
    for j in range(m):
        partial = a * b_lsb[:, j]
        running_sum = running_sum + partial * 10**j
        columns.tokens(*(["+"] if j else []))
        columns.pairs(a_lsb, b_lsb[:, j : j + 1])
        columns.digits(digits_lsb(partial, n + 1))
        if j:
            columns.digits(digits_lsb(running_sum, n + j + 1))
    columns.tokens(EQUALS)
    return _answer(columns, a * b, n + m)


# ---------------------------------------------------------------------------------------------
# Addition


def addition_direct_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    return _answer(_operands_prompt(a, "+", b, n, m), a + b, max(n, m) + 1)


def addition_lsb_ids(a: np.ndarray, b: np.ndarray, n: int, m: int) -> np.ndarray:
    width = max(n, m)
    a_lsb, b_lsb = digits_lsb(a, width), digits_lsb(b, width)
    columns = _operands_prompt(a, "+", b, n, m)
    carry = np.zeros_like(a)
    for i in range(width):
        column_sum = a_lsb[:, i] + b_lsb[:, i] + carry
        carry = column_sum // 10
        columns.digits(np.stack([carry, column_sum % 10], axis=1))
    columns.tokens(EQUALS)
    return _answer(columns, a + b, width + 1)


# ---------------------------------------------------------------------------------------------
# Parity


def _bits_prompt(bits: np.ndarray, n: int) -> tuple[Columns, np.ndarray]:
    """``[BOS] x1 ... xn =`` and the (N, n) bit matrix."""
    matrix = bit_matrix(bits, n)
    columns = Columns(len(bits))
    columns.tokens(BOS)
    columns.digits(matrix)
    columns.tokens(EQUALS)
    return columns, matrix


def parity_running_ids(bits: np.ndarray, n: int, every: int) -> np.ndarray:
    columns, matrix = _bits_prompt(bits, n)
    prefix_parity = np.cumsum(matrix, axis=1) % 2
    checkpoints = list(range(every, n, every))
    if checkpoints:
        columns.digits(prefix_parity[:, [end - 1 for end in checkpoints]])
        columns.tokens(EQUALS)
    columns.digits(prefix_parity[:, -1])
    return columns.ids()


def parity_direct_ids(bits: np.ndarray, n: int) -> np.ndarray:
    return parity_running_ids(bits, n, every=n)


def parity_threshold_ids(bits: np.ndarray, n: int, every: int) -> np.ndarray:
    columns, matrix = _bits_prompt(bits, n)
    ends = [*range(every, n, every), n]  # the last bit of every block
    ones_before = np.cumsum(matrix, axis=1)[:, [end - 1 for end in ends]]  # ones up to each block end
    block_sums = np.diff(ones_before, axis=1, prepend=0)
    previous_parity = np.concatenate([np.zeros((len(bits), 1), dtype=np.int64), ones_before[:, :-1] % 2], axis=1)
    totals = previous_parity + block_sums  # p_{t-1} + s_t
    pairs = totals // 2  # a_t
    parity = totals - 2 * pairs  # p_t
    steps = np.stack([pairs[:, :-1], parity[:, :-1]], axis=2).reshape(len(bits), -1)  # a1 p1 a2 p2 ...
    columns.digits(steps)
    columns.digits(pairs[:, -1])
    columns.tokens(EQUALS)
    columns.digits(parity[:, -1])
    return columns.ids()
