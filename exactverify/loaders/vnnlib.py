"""Read and write VNN-LIB property files (the subset VNN-COMP uses).

A file declares the inputs `X_i` and outputs `Y_j` as Reals and asserts linear
comparisons over them, combined with `and`/`or` at any depth; all asserts hold
together. We multiply the conjunction out into disjunctive normal form and sort
each DNF term's comparisons into the `Property` normal form:

- over inputs only, one variable: a bound of the input box (the tightest wins);
- over inputs only, several variables: a row of `input_A x <= input_b`;
- over outputs only: a row of an `OutputConstraint` (one per DNF term);
- over both: rejected, since the normal form keeps inputs and outputs apart.

`<` and `>` are read as `<=` and `>=` (see `_Parser.comparison`), `=` as both,
and a chain `(<= a b c)` as `a <= b and b <= c`, as in SMT-LIB. A DNF term with
no output comparison leaves the outputs free: a disjunct with zero rows.

DNF terms with the same input region become one `Case` whose disjuncts are the
terms' output conjunctions, so an L_inf ball with 9 "some other class wins"
alternatives stays a single box with 9 disjuncts.

Numbers are read as exact rationals and the arithmetic of a comparison is done
exactly, so each coefficient and bound of the result is rounded to float64 once.
For the common `(<= X_0 0.1)` this is exactly `float("0.1")`, what every other
VNN-LIB reader uses.

Anything we cannot read is an `InputError` naming the file and, where there is
one, the line.
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.errors import InputError
from ..core.property import Case, OutputConstraint, Property

# Multiplying out an `and` of `or`s grows exponentially; past this many DNF terms
# we refuse rather than exhaust memory.
MAX_DNF_TERMS = 100_000

# Formulas and terms are walked recursively; bounding the nesting when reading
# keeps a hostile file from hitting Python's recursion limit (not an InputError).
MAX_DEPTH = 200

# Exponents beyond this are far outside float64 and would make Fraction build
# enormous integers (1e-999999999 takes forever), so we stop at the token.
MAX_EXPONENT = 4000

# Commands that do not change which inputs satisfy the asserts. SMT-LIB files
# written for solvers often carry them.
IGNORED_COMMANDS = {"check-sat", "get-model", "exit", "set-logic", "set-info", "set-option"}

COMPARISONS = {"<=", ">=", "<", ">", "="}


def load_vnnlib(path, n_inputs: int | None = None, n_outputs: int | None = None) -> Property:
    """Parse the VNN-LIB file at `path` (plain or gzipped) into a validated `Property`.

    `n_inputs` / `n_outputs` default to the number of declared X_i / Y_j; when
    given, a different declared count is an InputError.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read the property file: {e.strerror or e}") from None
    if data[:2] == b"\x1f\x8b":  # VNN-COMP 2022+ ships its specs gzipped
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise InputError(path, f"cannot decompress gzipped property file: {e}") from None
    try:
        text = data.decode("utf-8-sig")  # -sig: drop a byte-order mark some editors add
    except UnicodeDecodeError as e:
        raise InputError(path, f"not a text file (invalid UTF-8 at byte {e.start})") from None
    return parse_vnnlib(text, source=str(path), n_inputs=n_inputs, n_outputs=n_outputs)


def parse_vnnlib(text: str, source=None, n_inputs: int | None = None,
                 n_outputs: int | None = None) -> Property:
    """Parse VNN-LIB `text`; `source` names the file in error messages."""
    parser = _Parser(text, source)
    terms = parser.parse()
    n_in, n_out = parser.variable_counts()
    if n_inputs is not None and n_inputs != n_in:
        raise InputError(source, f"the property declares {n_in} inputs (X_0..X_{n_in - 1}) "
                                 f"but {n_inputs} were expected")
    if n_outputs is not None and n_outputs != n_out:
        raise InputError(source, f"the property declares {n_out} outputs (Y_0..Y_{n_out - 1}) "
                                 f"but {n_outputs} were expected")
    cases = _NormalFormBuilder(parser, n_in, n_out).build(terms)
    return Property(n_in, n_out, cases, source=None if source is None else str(source)).validate()


def write_vnnlib(prop: Property, path) -> None:
    """Write `prop` as VNN-LIB; `load_vnnlib` reads it back as an equivalent Property."""
    prop.validate()
    Path(path).write_text(_format_property(prop))


# --- s-expressions --------------------------------------------------------------

# A token is a parenthesis, a comment (skipped) or a run of anything else; all
# other characters are whitespace, so finditer never skips over text.
_TOKEN = re.compile(r"[()]|;[^\n]*|[^\s();]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?")
_VARIABLE = re.compile(r"([XY])_(0|[1-9]\d*)")


class _Tok(NamedTuple):
    text: str
    pos: int  # offset into the text, turned into a line number only for errors


class _List(list):
    """A parenthesised list of _Tok and _List, remembering where its '(' is."""

    __slots__ = ("pos",)

    def __init__(self, pos: int):
        super().__init__()
        self.pos = pos


class _Linear:
    """sum(coeffs[v] * v) + const, with v = ("X" or "Y", index), exact rationals."""

    __slots__ = ("coeffs", "const")

    def __init__(self, coeffs: dict, const: Fraction):
        self.coeffs = coeffs
        self.const = const

    def plus(self, other: "_Linear", sign: int = 1) -> "_Linear":
        coeffs = dict(self.coeffs)
        for v, c in other.coeffs.items():
            coeffs[v] = coeffs.get(v, 0) + sign * c
        return _Linear(coeffs, self.const + sign * other.const)

    def times(self, factor: Fraction) -> "_Linear":
        return _Linear({v: c * factor for v, c in self.coeffs.items()}, self.const * factor)


@dataclass(eq=False)  # compared and hashed by identity: DNF terms share atom objects
class _Atom:
    """sum(coeffs[i] * kind_i) <= bound, over inputs (kind "X") or outputs ("Y") only."""

    kind: str
    coeffs: dict  # index -> nonzero Fraction
    bound: Fraction
    pos: int


# --- parsing: text -> DNF terms (tuples of atoms) -------------------------------

class _Parser:
    def __init__(self, text: str, source):
        self.text = text
        self.source = source
        self.declared: dict[tuple[str, int], int] = {}  # variable -> offset of its declaration

    def error(self, pos: int | None, problem: str) -> InputError:
        if pos is None:
            return InputError(self.source, problem)
        return InputError(self.source, f"line {self.line(pos)}: {problem}")

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def parse(self) -> list[tuple]:
        """The conjunction of all asserts, in DNF: a list of terms, each a tuple of atoms."""
        commands = self.read_sexprs()
        if not commands:
            raise self.error(None, "the file is empty: no declarations or assertions")
        asserted = []
        for cmd in commands:
            name = self.head(cmd)
            if name == "declare-const":
                self.declare(cmd)
            elif name == "assert":
                if len(cmd) != 2:
                    raise self.error(cmd.pos, f"assert takes exactly one formula, found {len(cmd) - 1}")
                asserted.append(self.formula(cmd[1]))
            elif name not in IGNORED_COMMANDS:
                raise self.error(cmd.pos, f"unknown command '{name}' (expected declare-const or assert)")
        if not asserted:
            raise self.error(None, "no (assert ...) in the file")
        return self.conjoin(asserted, None)

    def variable_counts(self) -> tuple[int, int]:
        """Declared (n_inputs, n_outputs); the indices must be 0..n-1 without gaps."""
        counts = []
        for kind, role in (("X", "input"), ("Y", "output")):
            indices = sorted(i for k, i in self.declared if k == kind)
            if not indices:
                raise self.error(None, f"no {role} variables declared (expected (declare-const {kind}_0 Real) ...)")
            # The first gap is the first position whose index is not its position.
            gap = next((k for k, i in enumerate(indices) if i != k), None)
            if gap is not None:
                raise self.error(None, f"{role}s must be declared as {kind}_0, {kind}_1, ... without "
                                       f"gaps, but {kind}_{gap} is not declared")
            counts.append(len(indices))
        return counts[0], counts[1]

    def read_sexprs(self) -> list[_List]:
        root = _List(-1)
        stack = [root]
        top = root  # stack[-1], kept in a local because this loop runs once per token
        for m in _TOKEN.finditer(self.text):
            tok = m[0]
            if tok == "(":
                if len(stack) > MAX_DEPTH:
                    raise self.error(m.start(), f"expressions are nested more than {MAX_DEPTH} deep")
                node = _List(m.start())
                top.append(node)
                stack.append(node)
                top = node
            elif tok == ")":
                if top is root:
                    raise self.error(m.start(), "unbalanced parentheses: ')' without a matching '('")
                stack.pop()
                top = stack[-1]
            elif tok[0] == ";":
                continue
            elif top is root:
                raise self.error(m.start(), f"expected '(' to start a command, found '{tok}'")
            else:
                top.append(_Tok(tok, m.start()))
        if len(stack) > 1:
            # The outermost open command is the useful hint: a missing ')' makes it
            # swallow everything after it.
            raise self.error(stack[1].pos, "unbalanced parentheses: this '(' is never closed")
        return root

    def head(self, node: _List) -> str:
        if not node:
            raise self.error(node.pos, "empty parentheses '()'")
        if not isinstance(node[0], _Tok):
            raise self.error(node.pos, "expected an operator or command name after '(', found '('")
        return node[0].text

    def declare(self, cmd: _List) -> None:
        if len(cmd) != 3 or not isinstance(cmd[1], _Tok):
            raise self.error(cmd.pos, "expected (declare-const <name> Real)")
        name = cmd[1].text
        m = _VARIABLE.fullmatch(name)
        if m is None:
            raise self.error(cmd.pos, f"cannot declare '{name}': variables must be named X_<i> (inputs) "
                                      f"or Y_<j> (outputs)")
        sort = cmd[2].text if isinstance(cmd[2], _Tok) else "(...)"
        if sort != "Real":
            raise self.error(cmd.pos, f"{name} is declared as {sort}; only Real is supported")
        var = (m[1], int(m[2]))
        if var in self.declared:
            raise self.error(cmd.pos, f"{name} is declared twice (first on line {self.line(self.declared[var])})")
        self.declared[var] = cmd.pos

    # Formulas evaluate straight to DNF: a list of terms, each a tuple of atoms.
    # [] is false and [()] is true.

    def formula(self, node) -> list[tuple]:
        if isinstance(node, _Tok):
            raise self.error(node.pos, f"expected a formula such as (<= X_0 1), found '{node.text}'")
        op = self.head(node)
        args = node[1:]
        if op in ("and", "or"):
            if not args:
                raise self.error(node.pos, f"'{op}' needs at least one argument")
            parts = [self.formula(arg) for arg in args]
            if op == "and":
                return self.conjoin(parts, node.pos)
            return self.disjoin(parts, node.pos)
        if op in COMPARISONS:
            if len(args) == 2 and op != "=":
                atom = self.simple_bound(op, args[0], args[1], node.pos)
                if atom is not None:
                    return [(atom,)]
            return self.comparison(op, args, node.pos)
        if op in ("+", "-", "*"):
            raise self.error(node.pos, f"expected a formula, found the arithmetic term ({op} ...)")
        raise self.error(node.pos, f"unknown operator '{op}' (supported: and, or, <=, >=, <, >, =)")

    def conjoin(self, parts: list[list[tuple]], pos: int | None) -> list[tuple]:
        # One-term parts (plain comparisons, the usual case) are collected once
        # instead of being copied into every term of the product.
        common, multi = [], []
        count = 1
        for part in parts:
            if not part:
                return []
            if len(part) == 1:
                common.extend(part[0])
            else:
                multi.append(part)
                count *= len(part)
                if count > MAX_DNF_TERMS:
                    raise self.blowup(pos)
        products = [()]
        for part in multi:
            products = [t + u for t in products for u in part]
        common = tuple(common)
        return [common + t for t in products]

    def disjoin(self, parts: list[list[tuple]], pos: int) -> list[tuple]:
        terms = [t for part in parts for t in part]
        if len(terms) > MAX_DNF_TERMS:
            raise self.blowup(pos)
        return terms

    def blowup(self, pos: int | None) -> InputError:
        what = "this formula" if pos is not None else "the asserts together"
        return self.error(pos, f"{what} would expand to more than {MAX_DNF_TERMS} terms in disjunctive "
                               f"normal form (an 'and' of 'or's multiplies out); split the property into "
                               f"several files")

    def comparison(self, op: str, args: list, pos: int) -> list[tuple]:
        # SMT-LIB chains comparisons: (<= a b c) means a <= b and b <= c.
        if len(args) < 2:
            raise self.error(pos, f"'{op}' needs at least two arguments")
        sides = [self.term(arg) for arg in args]
        differences = []  # each d means d <= 0
        for left, right in zip(sides, sides[1:]):
            # '<' and '>' are read as '<=' and '>=', as VNN-COMP verifiers and their
            # witness checks do. This adds only the boundary to the unsafe set, so
            # an unsat answer stays sound for the strict reading.
            if op in ("<=", "<", "="):
                differences.append(left.plus(right, -1))
            if op in (">=", ">", "="):
                differences.append(right.plus(left, -1))
        atoms = []
        for d in differences:
            coeffs = {v: c for v, c in d.coeffs.items() if c != 0}
            if not coeffs:
                if d.const <= 0:
                    continue  # a true comparison between constants
                return []  # a false one
            kinds = {kind for kind, _ in coeffs}
            if len(kinds) == 2:
                raise self.error(pos, "mixed input/output constraint not supported: a comparison may use "
                                      "inputs X_i or outputs Y_j, not both")
            kind = kinds.pop()
            atoms.append(_Atom(kind, {i: c for (_, i), c in coeffs.items()}, -d.const, pos))
        return [tuple(atoms)]

    def simple_bound(self, op: str, left, right, pos: int) -> _Atom | None:
        """(<= X_3 0.5) and the like without the general term machinery, since they
        make up nearly all of a typical file (1568 in one MNIST spec); None otherwise."""
        if not (isinstance(left, _Tok) and isinstance(right, _Tok)):
            return None
        var, number = _VARIABLE.fullmatch(left.text), _NUMBER.fullmatch(right.text)
        var_on_left = var is not None and number is not None
        if not var_on_left:
            var, number = _VARIABLE.fullmatch(right.text), _NUMBER.fullmatch(left.text)
            if var is None or number is None:
                return None
        if (var[1], int(var[2])) not in self.declared:
            return None  # the general path reports it
        # var <= c is  var <= c; var >= c is  -var <= -c; and mirrored for c <= var.
        sign = 1 if (op in ("<=", "<")) == var_on_left else -1
        value = self.number(right if var_on_left else left, number)
        return _Atom(var[1], {int(var[2]): Fraction(sign)}, sign * value, pos)

    def term(self, node) -> _Linear:
        if isinstance(node, _Tok):
            return self.leaf(node)
        op = self.head(node)
        if op in COMPARISONS or op in ("and", "or"):
            raise self.error(node.pos, f"expected a number, variable or linear term, found ({op} ...)")
        if op not in ("+", "-", "*"):
            raise self.error(node.pos, f"unknown operator '{op}' in a term (supported: +, -, *)")
        if len(node) < 2:
            raise self.error(node.pos, f"'{op}' needs at least one argument")
        args = [self.term(arg) for arg in node[1:]]
        if op == "+":
            total = args[0]
            for arg in args[1:]:
                total = total.plus(arg)
            return total
        if op == "-":
            if len(args) == 1:
                return args[0].times(Fraction(-1))
            total = args[0]
            for arg in args[1:]:
                total = total.plus(arg, -1)
            return total
        variable_factors = [arg for arg in args if arg.coeffs]
        if len(variable_factors) > 1:
            raise self.error(node.pos, "non-linear term: (* ...) multiplies two terms that contain "
                                       "variables; only a constant times a term is supported")
        factor = Fraction(1)
        for arg in args:
            if not arg.coeffs:
                factor *= arg.const
        if variable_factors:
            return variable_factors[0].times(factor)
        return _Linear({}, factor)

    def leaf(self, tok: _Tok) -> _Linear:
        text = tok.text
        m = _VARIABLE.fullmatch(text)
        if m is not None:
            var = (m[1], int(m[2]))
            if var not in self.declared:
                raise self.error(tok.pos, f"{text} is used but not declared (add (declare-const {text} Real))")
            return _Linear({var: Fraction(1)}, Fraction(0))
        m = _NUMBER.fullmatch(text)
        if m is not None:
            return _Linear({}, self.number(tok, m))
        if text[0] in "0123456789+-.":
            raise self.error(tok.pos, f"cannot parse the number '{text}'")
        raise self.error(tok.pos, f"unknown symbol '{text}': expected a number or a variable "
                                  f"X_<i> / Y_<j>")

    def number(self, tok: _Tok, m: re.Match) -> Fraction:
        if m[1] is not None and abs(int(m[1])) > MAX_EXPONENT:
            raise self.error(tok.pos, f"the number '{tok.text}' is out of the float64 range")
        if not math.isfinite(float(tok.text)):
            raise self.error(tok.pos, f"the number '{tok.text}' is out of the float64 range")
        return Fraction(tok.text)


# --- normal form: DNF terms -> cases --------------------------------------------

class _NormalFormBuilder:
    def __init__(self, parser: _Parser, n_inputs: int, n_outputs: int):
        self.parser = parser
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs

    def build(self, terms: list[tuple]) -> list[Case]:
        if not terms:
            raise self.parser.error(None, "the asserts can never hold: every alternative contains a false "
                                          "comparison between constants")
        cases: dict[tuple, Case] = {}  # input-region key -> case, in order of appearance
        seen_disjuncts: dict[tuple, set] = {}
        regions: dict[tuple, tuple] = {}  # DNF terms share atom objects; build each region once
        for term in terms:
            input_atoms = tuple(a for a in term if a.kind == "X")
            output_atoms = [a for a in term if a.kind == "Y"]
            if input_atoms not in regions:
                regions[input_atoms] = self.input_region(input_atoms, several_terms=len(terms) > 1)
            key, lower, upper, input_A, input_b = regions[input_atoms]
            if key not in cases:
                cases[key] = Case(lower, upper, [], input_A, input_b)
                seen_disjuncts[key] = set()
            disjunct = self.output_constraint(output_atoms)
            disjunct_key = (disjunct.A.tobytes(), disjunct.b.tobytes())
            if disjunct_key not in seen_disjuncts[key]:
                seen_disjuncts[key].add(disjunct_key)
                cases[key].disjuncts.append(disjunct)
        for case in cases.values():
            # A disjunct without rows always holds, which makes the others redundant.
            unconstrained = [d for d in case.disjuncts if len(d.b) == 0]
            if unconstrained:
                case.disjuncts = unconstrained[:1]
        return list(cases.values())

    def input_region(self, atoms: tuple, several_terms: bool):
        n = self.n_inputs
        lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
        lower_pos, upper_pos = [None] * n, [None] * n
        rows = {}  # (coefficients, bound) -> None: ordered and without repeats
        for atom in atoms:
            if len(atom.coeffs) > 1:
                rows[self.row(atom, n)] = None
                continue
            (i, a), = atom.coeffs.items()
            exact = atom.bound if a == 1 else -atom.bound if a == -1 else atom.bound / a
            value = self.to_float(exact, atom.pos)
            if abs(a) != 1 and Fraction(value) != exact:
                # a X_i <= c with c/a not a float64: keep the row itself and give the
                # box the bound rounded outward, which the row implies, so the region
                # is exactly the row's.
                rows[self.row(atom, n)] = None
                if a > 0 and Fraction(value) < exact:
                    value = math.nextafter(value, math.inf)
                elif a < 0 and Fraction(value) > exact:
                    value = math.nextafter(value, -math.inf)
            if a > 0 and value < upper[i]:
                upper[i], upper_pos[i] = value, atom.pos
            elif a < 0 and value > lower[i]:
                lower[i], lower_pos[i] = value, atom.pos
        self.check_box(lower, upper, lower_pos, upper_pos, several_terms)
        if rows:
            input_A = np.array([r[0] for r in rows], dtype=np.float64)
            input_b = np.array([r[1] for r in rows], dtype=np.float64)
        else:
            input_A = input_b = None
        key = (lower.tobytes(), upper.tobytes(), tuple(rows))
        return key, lower, upper, input_A, input_b

    def check_box(self, lower, upper, lower_pos, upper_pos, several_terms: bool) -> None:
        where = " in one of the 'or' alternatives" if several_terms else ""
        for i in range(self.n_inputs):
            if lower_pos[i] is None and upper_pos[i] is None:
                raise self.parser.error(None, f"input X_{i} has no lower or upper bound{where}")
            if lower_pos[i] is None:
                raise self.parser.error(None, f"input X_{i} has no lower bound{where}")
            if upper_pos[i] is None:
                raise self.parser.error(None, f"input X_{i} has no upper bound{where}")
        empty = np.flatnonzero(lower > upper)
        if len(empty):
            i = int(empty[0])
            later = max(lower_pos[i], upper_pos[i])
            lines = (self.parser.line(lower_pos[i]), self.parser.line(upper_pos[i]))
            raise self.parser.error(later, f"empty input box: X_{i} >= {float(lower[i])!r} (line {lines[0]}) "
                                           f"and X_{i} <= {float(upper[i])!r} (line {lines[1]}) cannot both hold")

    def output_constraint(self, atoms: list) -> OutputConstraint:
        rows = dict.fromkeys(self.row(atom, self.n_outputs) for atom in atoms)
        A = np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), self.n_outputs)
        b = np.array([r[1] for r in rows], dtype=np.float64)
        return OutputConstraint(A, b)

    def row(self, atom: _Atom, n: int) -> tuple:
        coefficients = [0.0] * n
        for i, c in atom.coeffs.items():
            coefficients[i] = self.to_float(c, atom.pos)
        return tuple(coefficients), self.to_float(atom.bound, atom.pos)

    def to_float(self, value: Fraction, pos: int) -> float:
        try:
            result = float(value)  # correctly rounded: Fraction divides two ints
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            raise self.parser.error(pos, "a coefficient or bound of this comparison is out of the float64 range")
        return result


# --- writing --------------------------------------------------------------------

def _format_property(prop: Property) -> str:
    lines = ["; written by exactverify" + (f" from {prop.source}" if prop.source else "")]
    lines += [f"(declare-const X_{i} Real)" for i in range(prop.n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(prop.n_outputs)]
    if len(prop.cases) == 1:
        lines += [f"(assert {c})" for c in _case_conjuncts(prop.cases[0])]
    else:
        lines.append("(assert (or")
        lines += [f"    (and {' '.join(_case_conjuncts(case))})" for case in prop.cases]
        lines.append("))")
    return "\n".join(lines) + "\n"


def _case_conjuncts(case: Case) -> list[str]:
    """The case as a list of formulas that must all hold."""
    parts = []
    for i, (lo, hi) in enumerate(zip(case.lower, case.upper)):
        parts += [f"(>= X_{i} {_number(lo)})", f"(<= X_{i} {_number(hi)})"]
    if case.input_A is not None:
        parts += [_format_row(row, b, "X") for row, b in zip(case.input_A, case.input_b)]
    disjuncts = case.disjuncts
    if any(len(d.b) == 0 for d in disjuncts):
        return parts  # some disjunct always holds: the outputs are unconstrained
    if len(disjuncts) == 1:
        return parts + [_format_row(row, b, "Y") for row, b in zip(disjuncts[0].A, disjuncts[0].b)]
    alternatives = ["(and " + " ".join(_format_row(row, b, "Y") for row, b in zip(d.A, d.b)) + ")"
                    for d in disjuncts]
    return parts + ["(or " + " ".join(alternatives) + ")"]


def _format_row(coefficients, bound, kind: str) -> str:
    terms = []
    for i, a in enumerate(coefficients):
        if a == 1:
            terms.append(f"{kind}_{i}")
        elif a != 0:
            terms.append(f"(* {_number(a)} {kind}_{i})")
    if not terms:
        lhs = "0"
    elif len(terms) == 1:
        lhs = terms[0]
    else:
        lhs = "(+ " + " ".join(terms) + ")"
    return f"(<= {lhs} {_number(bound)})"


def _number(value) -> str:
    # repr is the shortest text that reads back as the same float64.
    return repr(float(value))
