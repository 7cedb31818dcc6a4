"""Errors a user can make in the configuration, with where they made them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding: ``FILE:LINE: section 'NAME' option 'OPT': message``."""

    path: str
    line: int
    section: str | None
    option: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:"
        if self.section is not None:
            where += f" section '{self.section}'"
        if self.option is not None:
            where += f" option '{self.option}'"
        if self.section is not None or self.option is not None:
            where += ":"
        return f"{where} {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
