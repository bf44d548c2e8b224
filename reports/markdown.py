"""The report as Markdown. Every piece of text is escaped: dataset text can hold pipes, newlines, Markdown
syntax or raw HTML (`<script>`), and none of it may break a table or reach a renderer as markup."""
from __future__ import annotations

import re

from reports.document import Bullets, Callout, Paragraph, Plot, Report, Table

PLOTS_DIR = "report_plots"  # PNGs next to report.md, linked relatively

_MARKDOWN_SPECIALS = re.compile(r"([\\`*\[\]|#~])")
_UNDERSCORES = re.compile(r"_+")


def escape_markdown(text: str) -> str:
    """Plain text -> Markdown that renders as that text on one line: HTML characters become entities,
    Markdown punctuation is backslash-escaped (underscores inside words like zero_shot are left readable)."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
    return _UNDERSCORES.sub(lambda run: run.group() if _inside_word(text, run) else run.group().replace("_", "\\_"), text)


def _inside_word(text: str, run: re.Match) -> bool:
    """Underscores with a letter or digit on both sides never start emphasis (zero_shot, sst2__lora)."""
    start, end = run.span()
    return start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()


def _table(table: Table) -> list[str]:
    def cell(text: str, best: bool) -> str:
        escaped = escape_markdown(text)
        return f"**★ {escaped}**" if best else escaped

    lines = ["| " + " | ".join(escape_markdown(column) for column in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(item.text, item.best) for item in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"*{escape_markdown(table.caption)}*"]
    return lines


def _block(block) -> list[str]:
    if isinstance(block, Callout):
        return ["> " + " ".join(escape_markdown(sentence) for sentence in block.sentences)]
    if isinstance(block, Paragraph):
        return [escape_markdown(block.text)]
    if isinstance(block, Bullets):
        return [f"- {escape_markdown(item)}" for item in block.items]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Plot):
        return [f"![{escape_markdown(block.caption)}]({PLOTS_DIR}/{block.name}.png)", "",
                f"*{escape_markdown(block.caption)}*"]
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(report: Report) -> str:
    lines = [f"# {escape_markdown(report.title)}", "", escape_markdown(report.subtitle), ""]
    for section in report.sections:
        lines += ["#" * section.level + " " + escape_markdown(section.title), ""]
        for block in section.blocks:
            lines += _block(block) + [""]
    return "\n".join(lines).rstrip() + "\n"
