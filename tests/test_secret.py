from __future__ import annotations

import json
import pickle

import pytest

from reconciler.secret import REDACTED, Parts, Secret, restore


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


def _pair() -> Parts:
    return Parts("secret", "s3cr3t" + "x" * 20, {"identifier": "portal-0a1b2c3d"})


def test_parts_render_each_part_and_no_whole_value():
    pair = _pair()
    assert pair.render("${token.identifier}:${token.secret}").reveal() == "portal-0a1b2c3d:s3cr3t" + "x" * 20
    assert pair.render("id=${token.identifier}").reveal() == "id=portal-0a1b2c3d"
    assert pair.names == ("identifier", "secret")
    with pytest.raises(ValueError, match="no whole value"):
        pair.render("Bearer ${token}")
    with pytest.raises(ValueError, match="no part 'password'"):
        pair.render("${token.password}")


def test_parts_redact_the_secret_part_and_may_show_the_identifier():
    pair = _pair()
    for shown in (str(pair), repr(pair), f"{pair}", str([pair])):
        assert "s3cr3t" not in shown and "portal" not in shown
    assert pair.shown == {"identifier": "portal-0a1b2c3d"}  # a plain part a plan may name
    assert isinstance(pair.part("secret"), Secret) and str(pair.part("secret")) == REDACTED
    assert "s3cr3t" + "x" * 20 in pair.secret_texts()
    with pytest.raises(TypeError):
        pickle.dumps(pair)


def test_parts_survive_their_plain_form_as_the_escrow_keeps_it():
    pair = _pair()
    back = restore(pair.reveal())
    assert isinstance(back, Parts) and back == pair and back.fingerprint() == pair.fingerprint()
    assert back.render("${token.secret}") == pair.part("secret")
    plain = restore("just-a-value")
    assert type(plain) is Secret and plain.reveal() == "just-a-value"
