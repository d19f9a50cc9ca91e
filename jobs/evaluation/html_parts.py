"""Small HTML builders shared by the report's sections: escaped text, numbers, intervals, tables."""

from __future__ import annotations

import html


def esc(value: object) -> str:
    return html.escape(str(value))


def num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def with_ci(value: float | None, ci: list[float] | None) -> str:
    return num(value) + (f" <span class='muted'>[{num(ci[0])}, {num(ci[1])}]</span>" if ci else "")


def table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    cells = "".join(f"<th class='{'l' if i < left else ''}'>{h}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"
