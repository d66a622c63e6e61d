"""``lmforge summary``: a folder without results is named."""

import pytest

from lmforge.cli.summary import main as summary_main


def test_a_folder_without_results_has_no_summary(tmp_path):
    with pytest.raises(SystemExit, match=r"no result\.json"):
        summary_main([str(tmp_path)])
