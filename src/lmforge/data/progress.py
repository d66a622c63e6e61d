"""Progress bars for the data-preparation steps (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
_console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console,
    )


def track(items: Iterable[T], description: str, total: int | None, unit: str) -> Iterator[T]:
    """Yield ``items`` while a bar shows how many are done and how many per second."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total, rate="")
        for count, item in enumerate(items, start=1):
            yield item
            elapsed = bar.tasks[task].elapsed or 0.0
            rate = f"{count / elapsed:,.0f} {unit}/s" if elapsed > 0 else ""
            bar.update(task, advance=1, rate=rate)
