"""``python -m pretrain evaluate``: the command grid on the real MuJoCo env, with scripted policies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from a1_contract import get_contract
from pretrain.evaluate import main
from pretrain.evaluate_grid import DEFAULT_GRID, Goals, evaluate_condition

CONTRACT = get_contract()


def hold_default_pose(obs: np.ndarray) -> np.ndarray:
    """Targets at the default pose: a robot that stands still whatever it is asked."""
    zero_raw = CONTRACT.action_bounds.to_normalized(np.zeros(CONTRACT.num_joints)).astype(np.float32)
    return np.tile(zero_raw, (len(obs), 1))


def test_default_grid_is_the_walking_goal_grid():
    goal_grid = {
        (-1.0, 0, 0),
        (-0.5, 0, 0),
        (0.5, 0, 0),
        (1.0, 0, 0),
        (0, -0.5, 0),
        (0, 0.5, 0),
        (0, 0, -1.0),
        (0, 0, 1.0),
    }
    assert goal_grid <= set(DEFAULT_GRID)
    assert all(sum(v != 0 for v in cmd) <= 1 for cmd in DEFAULT_GRID), "one non-zero component at a time"


def test_a_standing_robot_meets_the_standing_command_and_misses_the_moving_ones():
    grid = [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (-0.5, 0.0, 0.0), (0.0, 0.0, 1.0)]
    res = evaluate_condition(hold_default_pose, CONTRACT, grid, condition="nominal", robots_per_command=2, seconds=3.0,
                             settle_s=1.0)  # fmt: skip
    stand, fwd, back, turn = res.points
    assert stand.meets and stand.lin_error < 0.05 and stand.falls == 0
    # It stands: the error is the commanded speed, nothing moves along the command, negative commands alike.
    for point, speed in ((fwd, 0.5), (back, 0.5)):
        assert not point.meets
        assert point.lin_error == pytest.approx(speed, abs=0.05) and abs(point.speed_along) < 0.05
    assert not turn.meets and turn.yaw_error == pytest.approx(1.0, abs=0.05)
    assert res.summary["grid_tracking_error_max"] == pytest.approx(max(p.lin_error for p in res.points))
    assert res.summary["forward_0_5_speed"] == fwd.speed_along and not res.summary["meets_goals"]
    assert stand.saturated == 0.0


def test_falls_are_counted_and_a_fallen_robot_keeps_its_command():
    grid = [(0.5, 0.0, 0.0), (0.0, 0.5, 0.0)]

    def collapse(obs: np.ndarray) -> np.ndarray:
        # Every joint to its high bound: the A1 tips over within a second, again after each reset.
        np.testing.assert_allclose(obs[:, 9:12], np.repeat(grid, 2, axis=0), atol=1e-6)  # the command term
        return np.ones((len(obs), CONTRACT.num_joints), np.float32)

    res = evaluate_condition(collapse, CONTRACT, grid, condition="nominal", robots_per_command=2, seconds=3.0,
                             settle_s=0.5)  # fmt: skip
    assert all(p.falls >= 2 and not p.meets and p.saturated == 1.0 for p in res.points)


def test_goals_are_judged_per_command():
    from pretrain.evaluate_grid import PointResult, _goal_check

    def point(cmd, lin, yaw=0.0, along=0.0, falls=0):
        return PointResult(list(cmd), 1, lin, yaw, along, 0.0, falls, 30.0, 0.0)

    goals = Goals()
    assert _goal_check(point((1.0, 0, 0), 0.19), goals) and not _goal_check(point((0.5, 0, 0), 0.19, along=0.5), goals)
    assert not _goal_check(point((0.5, 0, 0), 0.1, along=0.4), goals), "0.5 m/s forward must move 0.45-0.55 m/s"
    assert _goal_check(point((0.5, 0, 0), 0.1, along=0.5), goals)
    assert not _goal_check(point((0, 0, 1.0), 0.1, yaw=0.25), goals)
    assert not _goal_check(point((0, 0.5, 0), 0.0, falls=1), goals)


def test_cli_writes_json_and_plot_and_prints_a_json_last_line(tmp_path, capsys, monkeypatch):
    import pretrain.rollout as rollout

    class Standing:
        contract = CONTRACT

        def __init__(self, path):
            assert path == "some/bundle"

        def __call__(self, obs):
            return hold_default_pose(obs)

    monkeypatch.setattr(rollout, "BundlePolicy", Standing)
    argv = ["some/bundle", "--out", str(tmp_path), "--robots", "1", "--seconds", "1.5", "--settle-s", "0.5"]
    code = main([*argv, "--command", "0", "0", "0", "--command", "0.5", "0", "0", "--json"])
    assert code == 1, "a standing robot does not meet the goals"
    head = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert head["metric"] == "grid_tracking_error_max" and head["conditions"] == "training"
    assert head["value"] == pytest.approx(0.5, abs=0.1) and head["meets_goals"] is False
    assert {"yaw_error_max", "falls", "return_20s", "forward_0_5_speed", "nominal_error_max"} <= set(head)
    doc = json.loads((tmp_path / "evaluation.json").read_text())
    assert set(doc["conditions"]) == {"nominal", "training"}
    assert [p["command"] for p in doc["conditions"]["nominal"]["points"]] == [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    assert (tmp_path / "evaluation.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_bad_flags(capsys):
    for argv in (["b", "--seconds", "0"], ["b", "--robots", "0"], ["b", "--second", "3"], ["b", "--conditions", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv


def test_video_of_a_command_sequence(tmp_path):
    from pretrain.evaluate_report import record_video

    path = record_video(
        hold_default_pose, CONTRACT, tmp_path / "video", sequence=((0.2, (0.5, 0.0, 0.0)), (0.2, (0, 0, 1.0)))
    )
    assert path.parent == tmp_path / "video" and path.stat().st_size > 1000
    assert path.read_bytes()[:3] in (b"GIF", b"\x00\x00\x00"), "a GIF (pillow) or an MP4 (imageio-ffmpeg)"


def test_the_latency_condition_is_training_conditions_with_targets_one_policy_step_late():
    from pretrain.evaluate_grid import condition_env_kwargs

    kwargs = condition_env_kwargs("latency", CONTRACT)
    assert kwargs == {"randomize": True, "obs_noise": True, "action_delay_substeps": CONTRACT.decimation}
    assert condition_env_kwargs("training", CONTRACT)["action_delay_substeps"] == 0
    with pytest.raises(ValueError, match="unknown condition"):
        condition_env_kwargs("windy", CONTRACT)

    def stomp(obs: np.ndarray) -> np.ndarray:  # alternating extreme targets: sensitive to when they act
        stomp.t += 1
        return np.full((len(obs), CONTRACT.num_joints), 0.6 if stomp.t % 2 else -0.6, np.float32)

    results = {}
    for condition in ("training", "latency", "training"):
        stomp.t = 0
        res = evaluate_condition(stomp, CONTRACT, [(0.5, 0.0, 0.0)], condition=condition, robots_per_command=2,
                                 seconds=1.0, settle_s=0.5)  # fmt: skip
        results.setdefault(condition, []).append(res.points[0].lin_error)
    assert results["training"][0] == results["training"][1]  # same seed, same run
    assert results["latency"][0] != results["training"][0]
