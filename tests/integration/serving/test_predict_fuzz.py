"""lockgate's adversarial suite, serving ``/predict`` on the session's live Ray Serve app: hypothesis sends
records of every shape (right fields with wrong types, extremes, missing and extra fields, nesting),
arrays of them, non-JSON bytes, odd content types, junk ``version`` pins and request headers.

The properties: never a 5xx (the model is up), every 200 answers exactly the records sent, and
after all of it a valid record still gets the same answer as before. The number of requests tried
and of 5xx answers is printed (``-s``) for the issue note.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.serving import loan_records

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLES = 250
# Generated once, outside any strategy: hypothesis must own every random choice a strategy makes.
SAMPLES = loan_records(20, seed=9)
FIELDS = list(SAMPLES[0])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["NaN", "Infinity", "1e400", "-0", "", "\x00", "x" * 2000])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def records(draw) -> dict:
    """A valid record (about half the time), else one with fields broken, dropped or added."""
    record = dict(draw(st.sampled_from(SAMPLES)))
    if draw(st.booleans()):
        return record
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            record.pop(field, None)
        else:
            record[field] = draw(values)
    if draw(st.booleans()):
        record[draw(st.text(max_size=10))] = draw(values)
    return record


payloads = (
    records().map(json.dumps)
    | st.lists(records(), max_size=5).map(json.dumps)
    | st.lists(records(), max_size=3).map(lambda rows: json.dumps({"records": rows}))
    | values.map(json.dumps)
    | st.sampled_from(["[" * 3000 + "]" * 3000, '{"age": NaN}', "", "null", "[]", '{"records": {}}'])
).map(str.encode) | st.binary(max_size=200)
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])
versions = st.none() | st.sampled_from(["v1", "v999", "", "../v1", "v1\n", "%00"]) | st.text(max_size=8)
header_values = st.text(
    st.characters(min_codepoint=33, max_codepoint=126), max_size=60
)  # no edge spaces (clients refuse them)


def test_predict_never_5xx_and_answers_exactly_what_it_was_sent(serving, capsys):
    url = f"{serving.url}/predict"
    probe = loan_records(1, seed=77)[0]
    tally = {"requests": 0, "5xx": 0, "200": 0}
    failures: list[str] = []
    with httpx.Client(timeout=60) as http:
        before = http.post(url, json=probe).json()["predictions"][0]["probability"]

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            body=payloads,
            content_type=content_types,
            version=versions,
            request_id=st.none() | header_values,
            key=st.none() | header_values,
        )
        def probe_predict(body, content_type, version, request_id, key) -> None:
            headers = {"content-type": content_type} if content_type else {}
            if request_id is not None:
                headers["x-request-id"] = request_id
            if key is not None:
                headers["x-lockgate-key"] = key
            params = {"version": version} if version is not None else {}
            response = http.post(url, content=body, headers=headers, params=params)
            tally["requests"] += 1
            if response.status_code >= 500:
                tally["5xx"] += 1
                failures.append(f"{body[:120]!r} {params} -> {response.status_code} {response.text[:200]}")
                return
            if response.status_code == 200:
                tally["200"] += 1
                sent = json.loads(body)
                sent = sent["records"] if isinstance(sent, dict) and "records" in sent else sent
                expected = len(sent) if isinstance(sent, list) else 1
                answered = response.json()["predictions"]
                if len(answered) != expected:
                    failures.append(f"{body[:120]!r}: {expected} record(s) sent, {len(answered)} answered")
            else:
                assert "message" in response.text or "detail" in response.text, response.text

        probe_predict()
        after = http.post(url, json=probe).json()["predictions"][0]["probability"]
    with capsys.disabled():
        print(
            f"\n/predict fuzz: {tally['requests']} requests, {tally['200']} answered 200, {tally['5xx']} 5xx"
        )
    assert not failures, "\n".join(failures[:10])
    assert after == pytest.approx(before)
