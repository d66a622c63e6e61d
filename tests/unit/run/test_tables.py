"""The one table writer behind a study's trials.csv/summary.md and a multirun's summary.csv/summary.md."""

from __future__ import annotations

import csv

from lmforge.run.tables import markdown_table, write_csv


def test_a_pipe_inside_a_cell_does_not_split_the_markdown_row():
    text = markdown_table(["job", "error"], [["0", ""], ["1", "ValueError: a | b"]])
    assert text == "| job | error |\n|---|---|\n| 0 |  |\n| 1 | ValueError: a \\| b |\n"


def test_the_csv_has_every_column_and_leaves_missing_values_empty(tmp_path):
    path = tmp_path / "table.csv"
    write_csv(path, ["job", "best", "error"], [{"job": 0, "best": 0.5}, {"job": 1, "error": "x, y"}])
    with open(path, newline="") as handle:
        assert list(csv.DictReader(handle)) == [
            {"job": "0", "best": "0.5", "error": ""},
            {"job": "1", "best": "", "error": "x, y"},
        ]
