"""What the commands print: the two consoles, warnings, and tables that fit the terminal (80
columns when piped) by wrapping one column and leaving out the less useful ones."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning line on stderr."""
    err.print(f"[yellow]warning:[/] {escape(message)}")


def print_table(
    rows: list[dict[str, str]], wrap: str, drop: tuple[str, ...] = (), min_width: int = 16
) -> None:
    """`rows` as a table whose `wrap` column alone wraps, in at least `min_width` characters;
    the `drop` columns are left out, in order, while the terminal (80 columns when piped) is
    too narrow for that."""
    columns = list(rows[0])
    for name in drop:
        if width(rows, columns, wrap, min_width) <= out.width:
            break
        columns.remove(name)
    table = Table(box=None, pad_edge=False)
    for name in columns:
        wraps = name == wrap
        widest = max(len(name), *(len(row[name]) for row in rows))
        table.add_column(
            name, no_wrap=not wraps, min_width=min(min_width, widest) if wraps else None
        )
    for row in rows:
        table.add_row(*(escape(row[name]) for name in columns))
    out.print(table)


def print_ranked(rows: list[dict[str, str]]) -> None:
    """Predictions as columns #1, #2, ..., or, where they do not fit, one line per rank."""
    if width(rows, list(rows[0]), "image", 16) > out.width:
        rows = [
            {
                **{k: v if rank == "#1" else "" for k, v in row.items() if not k.startswith("#")},
                "rank": rank,
                "prediction": top,
            }
            for row in rows
            for rank, top in row.items()
            if rank.startswith("#")
        ]
    print_table(rows, wrap="image")


def print_confusion(classes: list[str], confusion: list[list[int]]) -> None:
    """The confusion matrix; with class numbers as column headers when the names are too wide."""
    cells = [[str(n) if n else "." for n in row] for row in confusion]
    rows = [
        {"true \\ predicted": name, **dict(zip(classes, row, strict=True))}
        for name, row in zip(classes, cells, strict=True)
    ]
    if width(rows, list(rows[0]), "", 0) > out.width:
        rows = [
            {"true \\ predicted": f"{i} {name}", **{str(j): n for j, n in enumerate(row)}}
            for i, (name, row) in enumerate(zip(classes, cells, strict=True))
        ]
    print_table(rows, wrap="true \\ predicted")


def width(rows: list[dict[str, str]], columns: list[str], wrap: str, min_width: int) -> int:
    """The width of a table of `rows` with the `wrap` column at most `min_width` wide."""
    widest = [max(len(name), *(len(row[name]) for row in rows)) for name in columns]
    widths = [min(w, min_width) if c == wrap else w for c, w in zip(columns, widest, strict=True)]
    return sum(widths) + 2 * (len(columns) - 1)
