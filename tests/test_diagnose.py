"""Diagnosis answers: five keys, fenced or bare, lists accepted; unusable answers retried with feedback."""

import pytest

from dgm.diagnose import DIAGNOSIS_KEYS, DiagnosisError, diagnose, parse_diagnosis

GOOD = {k: f"text for {k}" for k in DIAGNOSIS_KEYS}


def _json(d):
    import json

    return json.dumps(d)


def test_bare_and_fenced_answers_parse():
    assert parse_diagnosis(_json(GOOD)) == GOOD
    assert parse_diagnosis("Here you go:\n```json\n" + _json(GOOD) + "\n```\nThanks") == GOOD


def test_list_of_improvements_becomes_bullets():
    answer = dict(GOOD, potential_improvements=["add str_replace", "retry on empty patch"])
    assert parse_diagnosis(_json(answer))["potential_improvements"] == "- add str_replace\n- retry on empty patch"


@pytest.mark.parametrize("bad", ["not json at all", _json({k: "x" for k in DIAGNOSIS_KEYS[:4]}),
                                 _json(dict(GOOD, problem_description=""))])
def test_missing_or_empty_keys_are_rejected(bad):
    with pytest.raises(DiagnosisError, match="problem_description|keys"):
        parse_diagnosis(bad)


def test_retry_shows_the_model_its_bad_answer_and_stops_after_max_attempts():
    seen = []

    def chat(messages):
        seen.append(messages)
        return "nonsense" if len(seen) < 3 else _json(GOOD)

    diagnosis, answers = diagnose("prompt", chat, max_attempts=4)
    assert diagnosis == GOOD and answers[:2] == ["nonsense", "nonsense"]
    assert seen[1][-2] == {"role": "assistant", "content": "nonsense"}
    assert "could not be used" in seen[1][-1]["content"]

    with pytest.raises(DiagnosisError, match="after 2 answers"):
        diagnose("prompt", lambda m: "nonsense", max_attempts=2)
