"""The fine-tuning actor's records (:mod:`finetune.actor`): how an episode ends, each finished episode, counters.

Episode protocol (what the learner sees: ``terminated`` and ``truncated`` of the episode's last transition):

=====================  ==========  ==========  ================================================================
end                    terminated  truncated   when
=====================  ==========  ==========  ================================================================
``fall``               1           0           the safety layer latches ``fallen`` (tilt); the next obs is the
                                               fallen state; the robot is then reset (emulator service) or
                                               stood up, and a new episode starts after the soft start
``timeout``            0           1           ``episode_steps`` transitions (the contract's episode length)
``operator``           0           1           the operator called ``~/reset`` (or ``end_episode("operator")``)
``interrupted``        0           1           any other stop of the policy with a usable state (e-stop,
                                               stale sensors, learner lost in ``stand`` mode)
=====================  ==========  ==========  ================================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EpisodeEnd(enum.Enum):
    """Why an episode ended (the table above)."""

    FALL = "fall"
    TIMEOUT = "timeout"
    OPERATOR = "operator"
    INTERRUPTED = "interrupted"

    @property
    def terminated(self) -> bool:
        return self is EpisodeEnd.FALL


@dataclass
class EpisodeRecord:
    """One finished episode, for reports."""

    index: int
    steps: int
    ret: float
    end: str
    policy_version: int
    command: list[float]
    terms: dict[str, float]
    """Sum over the episode of each weighted term (times policy_dt): what made up the return."""
    wall_time: float
    true_ret: float | None = None
    """The return the referee computed from the ground truth; None: no referee, or a step without ground truth."""
    true_terms: dict[str, float] = field(default_factory=dict)
    """``terms`` from the ground truth ({} when ``true_ret`` is None)."""


@dataclass
class ActorStats:
    """The actor's counters since it started, and its finished episodes."""

    transitions: int = 0
    dropped: int = 0
    episodes: int = 0
    falls: int = 0
    policy_swaps: int = 0
    policies_rejected: int = 0
    policy_version: int = 0
    learner_lost_ticks: int = 0
    actions_bounded: int = 0
    """Transitions in which the safety layer bounded the policy's targets (the stored action is the policy's)."""
    transitions_by_version: dict[int, int] = field(default_factory=dict)
    episode_log: list[EpisodeRecord] = field(default_factory=list)
