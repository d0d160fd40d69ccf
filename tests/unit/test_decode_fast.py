"""The orjson fast path for flat JSON objects answers as the checking parser, or steps aside."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest import decode

KEYS = st.sampled_from(["on_hand", "temp_c", "state", "ts", 'a":b', "é", "x y"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    pairs = draw(
        st.lists(st.tuples(KEYS, st.one_of(SCALARS, st.lists(SCALARS, max_size=2))), max_size=5)
    )
    if draw(st.booleans()):
        pairs.append(("nested", {"k": 1}))  # type: ignore[arg-type]
    body = ", ".join(
        f"{json.dumps(k)}{draw(st.sampled_from([':', ' :', ': ']))}{json.dumps(v)}"
        for k, v in pairs
    )
    text = "{" + body + "}"
    prefix = draw(st.sampled_from(["", " ", "\ufeff"]))
    return (prefix + text).encode("utf-8", "surrogatepass")


def slow(raw: bytes) -> tuple[str, object]:
    try:
        return "", decode._DECODER.decode(raw.decode("utf-8-sig"))
    except Exception as exc:
        return type(exc).__name__, None


@settings(max_examples=2000, deadline=None)
@given(payloads())
def test_the_fast_path_says_what_the_checking_parser_says_or_steps_aside(raw: bytes) -> None:
    fast = decode._flat_object(raw)
    if fast is None:
        return
    reason, payload = slow(raw)
    assert reason == ""
    assert json.dumps(fast, sort_keys=True) == json.dumps(payload, sort_keys=True)


def test_a_repeated_key_is_still_refused() -> None:
    for raw in (
        b'{"on_hand": 1, "on_hand": 2}',
        b'{"on_hand":1, "on_hand" :2}',
        b'{"on_hand":1, "on\\u005fhand":2}',
    ):
        assert decode._flat_object(raw) is None, raw
    assert decode._flat_object(b'{"on_hand":1,"ts":"2026-12-04T10:00:00Z"}') == {
        "on_hand": 1,
        "ts": "2026-12-04T10:00:00Z",
    }
    reason, payload = decode._parse_json(b'{"on_hand": 1, "on_hand": 2}', 1000)
    assert payload is None and "duplicate key" in reason
