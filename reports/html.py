"""The report as one self-contained HTML file: inline CSS, figures as base64 data URIs, no script at all,
so it opens offline, mails as one attachment and prints cleanly. All text goes through html.escape, and a
Content-Security-Policy forbids scripts as a second line of defence against dataset text."""
from __future__ import annotations

import base64
from html import escape

from reports.document import Bullets, Callout, Paragraph, Plot, Report, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0969da; --best: #fff5d6; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 24px 0 8px; }
.subtitle { color: var(--muted); margin: 0 0 16px; }
.callout { border-left: 5px solid var(--accent); background: #eef5ff; padding: 12px 18px; margin: 12px 0;
           font-size: 16px; border-radius: 0 6px 6px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td { max-width: 420px; overflow-wrap: anywhere; }
td:first-child { white-space: nowrap; }
td.best { background: var(--best); font-weight: 700; }
tbody tr:nth-child(even) td:not(.best) { background: #fbfcfd; }
.caption, figcaption { color: var(--muted); font-size: 13px; margin: 4px 0 16px; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
ul { margin: 6px 0; padding-left: 22px; }
@media print {
  @page { margin: 14mm; }
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  table, figure, .callout { break-inside: avoid; }
  .scroll { overflow: visible; }
  table { font-size: 8.5pt; }
  td { max-width: none; }
  .callout { background: none; border: 1px solid #888; border-left: 5px solid #333; }
  td.best { background: none; }
  a { color: inherit; text-decoration: none; }
}
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in table.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="best">★ {escape(cell.text)}</td>' if cell.best else f"<td>{escape(cell.text)}</td>"
                         for cell in row) + "</tr>"
        for row in table.rows)
    caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{caption}'


def _block(block) -> str:
    if isinstance(block, Callout):
        return f'<div class="callout">{escape(" ".join(block.sentences))}</div>'
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Plot):
        data = base64.b64encode(block.png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(block.caption)}">'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>")
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(report: Report) -> str:
    sections = "".join(
        f"<section><h{section.level}>{escape(section.title)}</h{section.level}>"
        + "".join(_block(block) for block in section.blocks) + "</section>"
        for section in report.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head>"
        f'<body><h1>{escape(report.title)}</h1><p class="subtitle">{escape(report.subtitle)}</p>'
        f"{sections}</body></html>\n"
    )
