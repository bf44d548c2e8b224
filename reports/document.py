"""The report as a document: sections of callouts, paragraphs, bullets, tables and figures, plain text only.

`reports.build` fills it from the results; `reports.markdown` and `reports.html` render it, each escaping
the text for its format. The renderers and the builder meet here, so neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Cell:
    text: str
    best: bool = False


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Callout:
    """The headline: a few sentences a manager reads first."""

    sentences: list[str]


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Plot:
    name: str  # file stem, e.g. "sst2-accuracy-vs-cost"
    caption: str
    png: bytes


Block = Union[Callout, Paragraph, Bullets, Table, Plot]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]

    def plots(self) -> list[Plot]:
        return [block for section in self.sections for block in section.blocks if isinstance(block, Plot)]
