"""A safe arithmetic formula language for ``multi`` graders' ``calculate_output`` (no ``eval``).

Grammar (``^`` is power and binds right; unary minus binds tighter than ``*`` and looser than ``^``)::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("-" | "+") unary | power
    power  := atom ("^" unary)?
    atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Functions: ``min max`` (one or more arguments), ``abs floor ceil exp sqrt log`` (one argument).
Names are the sub-graders' keys.

>>> f = parse_formula("0.5 * name + 0.5 * max(args, 2^-1)")
>>> evaluate(f, {"name": 1.0, "args": 0.2})
0.75
>>> sorted(variables(f))
['args', 'name']
>>> parse_formula("1 +")
Traceback (most recent call last):
...
reinforge.graders.formula.FormulaError: unexpected end of formula after '1 +'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

FUNCTIONS: dict[str, tuple[Callable[..., float], int | None]] = {  # name -> (fn, arity; None = 1+)
    "min": (lambda *xs: min(xs), None),
    "max": (lambda *xs: max(xs), None),
    "abs": (abs, 1),
    "floor": (math.floor, 1),
    "ceil": (math.ceil, 1),
    "exp": (math.exp, 1),
    "sqrt": (math.sqrt, 1),
    "log": (math.log, 1),
}
_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][\w.-]*)|(\*\*|[-+*/^(),]))"
)

# a parsed formula is a tuple tree: ("num", x) | ("var", name) | ("neg", a) | (op, a, b) | ("call", fn, args)
Node = tuple


class FormulaError(ValueError):
    """The formula does not parse (OpenAI's ``formula_parse_error``)."""


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        num, name, op = m.groups()
        tokens.append(("num", num) if num else ("name", name) if name else ("op", "^" if op == "**" else op))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, tokenize(text), 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FormulaError(f"unexpected end of formula after {self.text.strip()!r}")
        if value is not None and tok[1] != value:
            raise FormulaError(f"expected {value!r} but found {tok[1]!r}")
        self.i += 1
        return tok

    def expr(self) -> Node:
        node = self.term()
        while (tok := self.peek()) and tok[1] in "+-" and tok[0] == "op":
            node = (self.take()[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) and tok[0] == "op" and tok[1] in "*/":
            node = (self.take()[1], node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in "+-":
            self.take()
            inner = self.unary()
            return ("neg", inner) if tok[1] == "-" else inner
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if (tok := self.peek()) and tok == ("op", "^"):
            self.take()
            return ("^", base, self.unary())
        return base

    def atom(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            return ("num", float(value))
        if kind == "op" and value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind == "name":
            if self.peek() == ("op", "("):
                if value not in FUNCTIONS:
                    raise FormulaError(f"unknown function {value!r}; known: {', '.join(FUNCTIONS)}")
                self.take("(")
                args = [self.expr()]
                while self.peek() == ("op", ","):
                    self.take()
                    args.append(self.expr())
                self.take(")")
                arity = FUNCTIONS[value][1]
                if arity is not None and len(args) != arity:
                    raise FormulaError(f"{value}() takes {arity} argument, got {len(args)}")
                return ("call", value, tuple(args))
            return ("var", value)
        raise FormulaError(f"unexpected {value!r}")


def parse_formula(text: str) -> Node:
    """Parse ``text`` into a tree; raise :class:`FormulaError` with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("calculate_output must be a non-empty formula")
    p = _Parser(text)
    node = p.expr()
    if (extra := p.peek()) is not None:
        raise FormulaError(f"unexpected {extra[1]!r} after a complete expression")
    return node


def variables(node: Node) -> set[str]:
    """Every variable name used in the tree."""
    if node[0] == "var":
        return {node[1]}
    if node[0] == "num":
        return set()
    if node[0] == "call":
        return set().union(*(variables(a) for a in node[2]))
    return set().union(*(variables(a) for a in node[1:]))


def evaluate(node: Node, env: dict[str, float]) -> float:
    """Evaluate a tree; math errors (``1/0``, ``sqrt(-1)``) raise ``ArithmeticError``/``ValueError``."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        return float(env[node[1]])
    if kind == "neg":
        return -evaluate(node[1], env)
    if kind == "call":
        return float(FUNCTIONS[node[1]][0](*(evaluate(a, env) for a in node[2])))
    a, b = evaluate(node[1], env), evaluate(node[2], env)
    if kind == "+":
        return a + b
    if kind == "-":
        return a - b
    if kind == "*":
        return a * b
    if kind == "/":
        return a / b
    return float(a**b)
