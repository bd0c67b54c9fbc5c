"""The cross-validation section: the label issues' reasons in words, and a one-click manifest download."""

from __future__ import annotations

from astapp.ui.cv_view import ISSUE_WIDTHS, ISSUES, why


def test_why_says_the_reason_in_words():
    label = why({"kind": "label", "given": "rain", "suggested": "wind", "score": 0.93})
    assert "'rain' only 7%" in label and "'wind'" in label
    disagrees = why({"kind": "prediction disagrees", "given": "rain", "suggested": "wind", "score": 0.6})
    assert "predicts 'wind'" in disagrees and "'rain' only 40%" in disagrees
    dup = why({"kind": "near-duplicate of a/b.wav", "given": "rain", "suggested": "wind", "score": 0.49})
    assert dup == "near-duplicate of a/b.wav with another label ('wind')"
    assert len(ISSUE_WIDTHS) == len(ISSUES)

