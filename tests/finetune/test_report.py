"""The pipeline's report (report.md, report.png) from episode records: ground-truth and measured returns."""

from __future__ import annotations

import csv

from finetune.pipeline import write_report


def _episode(i: int, ret: float, true_ret: float | None, end: str = "timeout") -> dict:
    terms = {"track_lin_vel_xy_exp": ret + 1.0, "dof_acc_l2": -1.0}
    true_terms = {} if true_ret is None else {"track_lin_vel_xy_exp": true_ret + 0.2, "dof_acc_l2": -0.2}
    return {"index": i, "steps": 250, "ret": ret, "end": end, "policy_version": i, "command": [0.5, 0.0, 0.0],
            "terms": terms, "wall_time": 0.0, "true_ret": true_ret, "true_terms": true_terms}  # fmt: skip


def test_the_report_shows_ground_truth_and_measured_returns(tmp_path):
    before = {"returns": [6.6, 6.7], "episode_log": [_episode(1, 5.8, 6.6), _episode(2, 5.9, 6.7)]}
    after = {"returns": [7.6], "episode_log": [_episode(1, 6.7, 7.6), _episode(2, 6.5, None)]}
    during = {"episode_log": [_episode(i, 5.0 + 0.1 * i, None, "fall" if i == 3 else "timeout") for i in range(1, 6)]}
    learner_csv = tmp_path / "learner.csv"
    with open(learner_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["wall_s", "real_transitions", "updates", "policy_version"])
        writer.writeheader()
        for k in range(1, 4):
            writer.writerow({"wall_s": 5 * k, "real_transitions": 250 * k, "updates": 250 * k, "policy_version": k})
    summary = {
        "bundle": "pretrain/reference_policy", "gap": {"mass_scale": 1.15}, "command": [0.5, 0.0, 0.0], "minutes": 2,
        "zero_shot_return": 6.65, "finetuned_return": 7.6, "zero_shot_returns": [6.6, 6.7], "finetuned_returns": [7.6],
        "zero_shot_measured_return": 5.85, "finetuned_measured_return": 6.6, "episodes_without_ground_truth": 1,
        "zero_shot_falls": 0, "finetuned_falls": 0, "transitions_sent": 1250, "episodes_during": 5, "falls_during": 1,
        "policy_swaps": 3, "learner": {"real_transitions": 1250, "updates": 750, "policy_version": 3},
        "transport": {"sent": 1250}, "safety_counters_during": {"ticks:fallen": 2, "ticks:estop": 0},
        "unmeasured_reward_terms": [],
    }  # fmt: skip
    write_report(tmp_path, summary, before, during, after, learner_csv)
    md = (tmp_path / "report.md").read_text()
    assert "| mean episode return (ground truth) | 6.650 | 7.600 |" in md
    assert "| mean episode return (measured by the robot) | 5.850 | 6.600 |" in md
    assert "1 episodes had no ground truth" in md and "ticks:fallen" in md and "ticks:estop" not in md
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
