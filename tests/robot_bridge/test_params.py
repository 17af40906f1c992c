"""Node parameters for an emulator run slower than real time (``robot_bridge.params.at_speed``)."""

from __future__ import annotations

import pytest

from robot_bridge.a1_driver_node import PARAMS as DRIVER_PARAMS
from robot_bridge.a1_driver_node import TIMING as DRIVER_TIMING
from robot_bridge.params import at_speed
from robot_bridge.policy_node import PARAMS as POLICY_PARAMS
from robot_bridge.policy_node import TIMING as POLICY_TIMING


def test_rates_scale_with_the_speed_and_timeouts_against_it():
    driver = at_speed(DRIVER_PARAMS, DRIVER_TIMING, 0.25, {"command_timeout_s": 0.3, "dry_run": False})
    assert driver["rate_hz"] == 125.0  # 500 Hz of simulated time
    assert driver["command_timeout_s"] == pytest.approx(1.2) and driver["state_timeout_s"] == pytest.approx(0.4)
    assert driver["state_period_ticks"] == 8000 and isinstance(driver["state_period_ticks"], int)
    assert driver["dry_run"] is False and "power_limit_w" not in driver  # not a wall-clock quantity: as given
    policy = at_speed(POLICY_PARAMS, POLICY_TIMING, 0.5, {"rate_hz": 50.0, "watchdog_timeout_s": 0.3})
    assert policy["rate_hz"] == 25.0 and policy["watchdog_timeout_s"] == pytest.approx(0.6)
    defaults = {p.name: p.default for p in POLICY_PARAMS}
    assert policy["soft_start_speed"] == pytest.approx(defaults["soft_start_speed"] * 0.5)
    assert policy["soft_start_hold_s"] == pytest.approx(defaults["soft_start_hold_s"] / 0.5)
    assert policy["stand_up_time_scale"] == pytest.approx(2.0)  # the stand-up's segments last twice as long


def test_real_time_leaves_the_values_alone_and_a_bad_speed_is_refused():
    values = {"watchdog_timeout_s": 0.3}
    assert at_speed(POLICY_PARAMS, POLICY_TIMING, 1.0, values) == values
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="speed must be > 0"):
            at_speed(POLICY_PARAMS, POLICY_TIMING, bad, values)


def test_every_timing_name_is_a_parameter_of_its_node():
    for params, timing in ((DRIVER_PARAMS, DRIVER_TIMING), (POLICY_PARAMS, POLICY_TIMING)):
        names = {p.name for p in params}
        assert set(timing.rates + timing.durations) <= names


def test_the_policy_nodes_default_rate_scales_too():
    from robot_bridge.policy_node import params_at_speed

    for given in ({}, {"rate_hz": 0.0}):  # 0: the contract's rate
        assert params_at_speed(0.5, given, 50.0)["rate_hz"] == 25.0
    assert params_at_speed(1.0, {"watchdog_timeout_s": 0.3}, 50.0) == {"watchdog_timeout_s": 0.3}


def test_a_stand_up_at_a_quarter_speed_is_the_same_stand_up_tick_for_tick():
    """The node at speed s ticks every dt / s of wall-clock with durations x 1/s: the same targets, tick by tick."""
    import numpy as np

    from a1_contract import get_contract
    from robot_bridge.standup import StandUpConfig, StandUpController

    contract = get_contract()
    lying = np.array(contract.default_joint_pos) + 0.6  # legs away from the default pose, trunk upright
    upright = np.array([0.0, 0.0, -1.0])

    def targets(scale: float) -> list[np.ndarray]:
        dt = 0.02 * scale
        controller = StandUpController(contract, StandUpConfig().scaled_in_time(scale), dt=dt)
        now, decision, out = 0.0, controller.start(0.0, lying, upright), []
        while not decision.done:
            assert decision.refused is None and len(out) < 10_000
            out.append(decision.targets)
            now += dt
            decision = controller.step(now, decision.targets, upright)
        return out

    assert StandUpConfig().scaled_in_time(1.0) == StandUpConfig()
    real_time, quarter = targets(1.0), targets(4.0)
    assert len(real_time) > 50 and len(quarter) == len(real_time)
    np.testing.assert_allclose(np.array(quarter), np.array(real_time), atol=1e-9)


def _registries() -> dict[str, tuple]:
    from finetune.actor_node import FINETUNE_PARAMS
    from robot_bridge.emulator_node import PARAMS as EMULATOR_PARAMS
    from robot_bridge.estimator_node import PARAMS as ESTIMATOR_PARAMS

    return {
        "a1_driver": DRIVER_PARAMS,
        "emulator_node": EMULATOR_PARAMS,
        "estimator": ESTIMATOR_PARAMS,
        "policy_node": POLICY_PARAMS,
        "finetune_actor": FINETUNE_PARAMS,  # and the policy node's
    }


def test_a_parameter_that_is_a_config_field_takes_the_fields_docstring():
    """Descriptions are written once: a node parameter named after a field of the config dataclass the node builds
    is described by that field's docstring (``robot_bridge.params.from_fields``)."""
    from a1_common.cli import field_docs
    from robot_bridge.a1_driver_types import DriverConfig
    from robot_bridge.emulator import DynamicsGap
    from robot_bridge.estimator import EstimatorConfig
    from robot_bridge.safety import SafetyConfig

    registries = _registries()
    configs = {"a1_driver": DriverConfig, "emulator_node": DynamicsGap, "estimator": EstimatorConfig,
               "policy_node": SafetyConfig}  # fmt: skip
    for node, config in configs.items():
        docs = field_docs(config)
        described = [p for p in registries[node] if p.name in docs]
        assert described, node
        for param in described:
            assert param.description.startswith(docs[param.name]), f"{node} {param.name}: {param.description!r}"


def test_no_two_parameters_share_a_description():
    seen: dict[str, str] = {}
    for node, params in _registries().items():
        for param in params:
            where = seen.setdefault(param.description, f"{node} {param.name}")
            assert where == f"{node} {param.name}", f"{node} {param.name} is described as {where}"


def test_from_fields_takes_values_and_docstrings_and_refuses_an_undescribed_field():
    from dataclasses import dataclass

    from robot_bridge.params import from_fields

    @dataclass
    class Config:
        gain: float = 2.0
        """Gain of the loop."""
        limit: float | None = None
        """Upper limit; None: none."""
        port: int = 8007

    params = from_fields(Config(), ["gain", "limit"], defaults={"limit": -1.0}, notes={"limit": "Negative: None."})
    assert [(p.name, p.default, p.description) for p in params] == [
        ("gain", 2.0, "Gain of the loop."),
        ("limit", -1.0, "Upper limit; None: none. Negative: None."),
    ]
    assert from_fields(Config(), ["port"], notes={"port": "UDP port."})[0].description == "UDP port."
    with pytest.raises(ValueError, match="Config.port has no docstring"):
        from_fields(Config())
