"""The one duration formatter every screen and `kirec runs` use: each of its four ranges, and their edges."""

import pytest

from kirec_tui.values import duration_text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.35, "350 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.0 s"),
        (4.24, "4.2 s"),
        (270, "4m 30s"),
        (3599.4, "59m 59s"),
        (7260, "2h 01m"),
    ],
)
def test_duration_text_picks_the_unit_by_size(seconds, text):
    assert duration_text(seconds) == text
