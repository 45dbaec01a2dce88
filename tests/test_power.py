"""`dgm plan`: sample sizes against textbook formulas worked by hand, and the planner's CLI (issue 15, item 4)."""

from __future__ import annotations

import json
import math

import pytest

from dgm.cli import main
from dgm.power import detectable_effect, tasks_needed

Z_975, Z_80, Z_90 = 1.959964, 0.841621, 1.281552  # normal quantiles from a printed table


def fleiss(p1, p2, za=Z_975, zb=Z_80):
    """Fleiss (1981) two-proportion sample size, no continuity correction, written out by hand."""
    pbar = (p1 + p2) / 2
    return ((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) / (p2 - p1)) ** 2


@pytest.mark.parametrize("p1,p2,power,zb,expected", [
    (0.5, 0.6, 0.8, Z_80, 388),  # (1.96*0.70356 + 0.8416*0.7)^2 / 0.01 = 387.3
    (0.2, 0.5, 0.8, Z_80, 39),  # the paper's 20% -> 50%
    (0.2, 0.3, 0.9, Z_90, 392),  # (1.96*0.61237 + 1.2816*0.60828)^2 / 0.01 = 391.9
    (0.14, 0.3, 0.8, Z_80, 105),  # (1.96*0.58583 + 0.8416*0.57480)^2 / 0.0256 = 104.04
])
def test_two_proportion_sizes_agree_with_the_textbook_formula(p1, p2, power, zb, expected):
    assert math.ceil(fleiss(p1, p2, zb=zb)) == expected
    assert abs(tasks_needed(p1, p2, power=power, design="two_proportion") - expected) <= 1


def test_the_simplest_textbook_formula_is_within_a_few_tasks():
    # n = (z_a + z_b)^2 (p1 q1 + p2 q2) / d^2 = 7.849 * 0.49 / 0.01 = 384.6: the well-known 385 for 50% vs 60%
    simple = (Z_975 + Z_80) ** 2 * (0.25 + 0.24) / 0.01
    assert math.ceil(simple) == 385
    assert 0 < tasks_needed(0.5, 0.6, design="two_proportion") - 385 <= 4  # Fleiss' pooled variance is larger


def test_paired_size_is_connors_mcnemar_formula():
    # psi = 0.3 discordant, d = 0.1: (1.96 sqrt(0.3) + 0.8416 sqrt(0.29))^2 / 0.01 = (1.0735 + 0.4532)^2 / 0.01 = 233.1
    assert tasks_needed(0.2, 0.3, discordance=0.3) == 234
    # fewer discordant tasks (agents agree more) need fewer tasks: the default assumes independence
    assert tasks_needed(0.2, 0.3, discordance=0.15) < tasks_needed(0.2, 0.3)
    with pytest.raises(ValueError, match="discordance must be >= \\|effect\\|"):
        tasks_needed(0.2, 0.5, discordance=0.2)


def test_detectable_effect_inverts_the_sample_size():
    for n in (60, 200):
        d = detectable_effect(n, 0.2)
        assert tasks_needed(0.2, 0.2 + d) <= n < tasks_needed(0.2, 0.2 + d - 0.005)
    assert detectable_effect(3, 0.2) is None  # no gain up to a perfect score is detectable on 3 tasks


@pytest.mark.parametrize("bad,named", [(["--baseline", "0.9", "--effect", "0.2"], "baseline + effect"),
                                       (["--baseline", "0.2"], "give --baseline and --effect"),
                                       (["--baseline", "0.2", "--effect", "0.1", "--alpha", "2"], "alpha")])
def test_bad_arguments_are_named(bad, named, capsys):
    assert main(["plan", *bad]) == 2
    assert named in capsys.readouterr().err


def test_plan_table_and_json_carry_the_same_figures(capsys):
    args = ["plan", "--baseline", "0.2", "--effect", "0.1", "--cost-per-task", "0.5", "--children", "10"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    paired = data["designs"][0]
    assert paired["design"] == "paired" and paired["tasks"] == tasks_needed(0.2, 0.3)
    assert paired["cost_per_child_usd"] == paired["tasks"] * 0.5
    assert paired["cost_per_run_usd"] == paired["tasks"] * 0.5 * 11
    for p in data["designs"]:
        assert str(p["tasks"]) in table and f"${p['cost_per_run_usd']:,.2f}" in table


def test_plan_of_a_config_states_what_each_stage_detects(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("loop: {generations: 5, children_per_generation: 2}\n"
                      "evaluation: {stages: [{tasks: small}, {tasks: medium, threshold: 0.4}]}\n")
    args = ["plan", str(config), "--baseline", "0.3", "--effect", "0.4", "--cost-per-task", "1"]
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["tasks"] for s in data["stages"]] == [10, 30]  # the local suite's small and small + medium
    assert [s["detects_effect"] for s in data["stages"]] == [False, True]
    assert data["stages"][1]["paired_effect"] == pytest.approx(detectable_effect(30, 0.3))
    assert data["children"] == 10 and data["cost_per_run_usd"] == {"low": 30 + 10 * 10, "high": 30 * 11}
    assert main(args) == 0
    table = capsys.readouterr().out
    assert f"+{data['stages'][1]['paired_effect']:.3f}" in table and "no" in table
