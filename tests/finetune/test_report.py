"""The pipeline's report (report.md, report.png) from episode records: ground-truth and measured returns."""

from __future__ import annotations

import csv

import numpy as np

from finetune.report import write_report


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


def _axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    return fig, ax


def test_an_unfinished_last_episode_is_not_plotted_as_a_drop(tmp_path):
    """The run's end cuts the last episode short (``interrupted``, a few steps, a return near 0): it is left out of
    the fine-tuning curve, the whole episodes (falls included) stay, and the axis label says one was left out."""
    import matplotlib.pyplot as plt

    from finetune.report import plot_during

    episodes = [_episode(i, 5.0 + 0.1 * i, None, "fall" if i == 2 else "timeout") for i in range(1, 5)]
    episodes.append({**_episode(5, 0.03, None, "interrupted"), "steps": 7})
    fig, ax = _axes()
    shown = plot_during(ax, episodes)
    assert shown == [1, 2, 3, 4]
    curve, falls = ax.get_lines()[:2]
    assert list(curve.get_xdata()) == [1, 2, 3, 4] and min(curve.get_ydata()) > 5.0
    assert list(falls.get_xdata()) == [2] and list(falls.get_ydata()) == [5.2]
    assert "1 unfinished episode not shown" in ax.get_xlabel()
    plt.close(fig)


def test_one_return_per_group_is_drawn_as_points_on_an_axis_from_zero():
    """One evaluation episode each and a 0.06 difference: no box plot (no spread to show), the points and their
    means, and a y-axis from 0 that keeps 6.60 vs 6.66 looking like the 1 % it is."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    from finetune.report import plot_returns

    fig, ax = _axes()
    kind = plot_returns(ax, {"zero-shot": [6.60], "fine-tuned": [6.66]})
    assert kind == "points"
    boxes = [line for line in ax.get_lines() if line.get_label() != "_zero"]  # whiskers, caps, medians
    assert not ax.patches and not boxes
    points = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert sorted(points[:, 1].round(2).tolist()) == [6.6, 6.66]
    low, high = ax.get_ylim()
    assert low <= 0.0 and high >= 6.66
    assert (6.66 - 6.60) / (high - low) < 0.02  # the difference is a sliver of the axis, not its full height
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["zero-shot\n(n=1, mean 6.600)", "fine-tuned\n(n=1, mean 6.660)"]
    plt.close(fig)


def test_enough_returns_get_a_box_plot_and_an_empty_group_is_named():
    import matplotlib.pyplot as plt

    from finetune.report import MIN_BOX_SAMPLES, plot_returns

    rng = np.random.default_rng(0)
    fig, ax = _axes()
    many = {"zero-shot": list(6.6 + rng.random(MIN_BOX_SAMPLES)), "fine-tuned": list(7.0 + rng.random(8))}
    assert plot_returns(ax, many) == "box"
    assert len(ax.get_lines()) >= 2 * 5  # whiskers, caps, median and mean of each box
    assert ax.get_ylim()[0] <= 0.0
    plt.close(fig)
    fig, ax = _axes()
    few = {"zero-shot": list(6.6 + rng.random(MIN_BOX_SAMPLES - 1)), "fine-tuned": list(7.0 + rng.random(8))}
    assert plot_returns(ax, few) == "points"
    plt.close(fig)
    fig, ax = _axes()
    assert plot_returns(ax, {"zero-shot": [6.6, 6.7], "fine-tuned": []}) == "points"
    assert ax.get_xticklabels()[1].get_text() == "fine-tuned\n(no complete episode)"
    plt.close(fig)
