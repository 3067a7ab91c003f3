from __future__ import annotations

import json
import pickle

import pytest

from reconciler.secret import REDACTED, Secret


def test_secret_never_prints_its_value():
    s = Secret("glpat-not-a-real-one")
    shown_forms = (str(s), repr(s), f"{s}", f"{s!r}", "%s" % s, str([s]), str({"k": s}))  # noqa: UP031
    for shown in shown_forms:
        assert "glpat" not in shown
    assert REDACTED in str(s)


def test_secret_cannot_be_serialised():
    s = Secret("value-123")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        json.dumps({"v": s})


def test_render_and_fingerprint():
    s = Secret("abc")
    assert s.render("Bearer ${token}").reveal() == "Bearer abc"
    assert s.fingerprint() == Secret("abc").fingerprint() != Secret("abd").fingerprint()
    assert s == Secret("abc") and s != Secret("abd")
