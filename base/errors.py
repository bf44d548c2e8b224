"""One error type for problems in the user's input, printed by the CLI without a traceback, and the exit codes."""
from __future__ import annotations

from pathlib import Path

# What `adapt` exits with (the README lists them): scripts and CI can tell a failed run from a typo in a plan.
EXIT_OK = 0
EXIT_RUNS_FAILED = 1  # compare finished, but at least one run failed (recorded in its JSON with the error)
EXIT_BAD_INPUT = 2  # an AdaptError: the plan, data, model name or results folder needs fixing; nothing ran
EXIT_UNEXPECTED = 3  # a bug: one line on the terminal, the traceback saved to a file
EXIT_INTERRUPTED = 130  # Ctrl-C: finished runs are kept


class AdaptError(Exception):
    """A problem the user can fix: names the file, line and field when they are known, and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        self.problems: list[AdaptError] = [self]  # `several` lists the ones it joins, for forms showing each by its field

    @property
    def location(self) -> str:
        """`file:line: field` with whatever parts are known."""
        where = self.file or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        if self.field:
            where = f"{where}: field '{self.field}'" if where else f"field '{self.field}'"
        return where

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


def several(problems: list[AdaptError], shown: int | None = None) -> AdaptError:
    """One error listing each problem on its own line (`file:line: field 'x': message`); the first `shown` of them
    when given, with the count of the rest."""
    if len(problems) == 1:
        return problems[0]
    listed = problems[:shown] if shown is not None else problems
    lines = [f"  {p.location}: {p.message}" if p.location else f"  {p.message}" for p in listed]
    if len(listed) < len(problems):
        lines.append(f"  ... and {len(problems) - len(listed)} more (the first {len(listed)} are listed)")
    hints = {p.hint for p in listed if p.hint}
    joined = AdaptError(f"{len(problems)} problems:\n" + "\n".join(lines), hint=hints.pop() if len(hints) == 1 else None)
    joined.problems = list(problems)
    return joined
