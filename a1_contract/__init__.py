"""The one shared robot + task contract for the Unitree A1 flat velocity task.

Every stage (pretrain, deploy, robot_bridge, finetune) imports its joint order, default pose, gains,
observation layout, action bounds and rates from here; none re-declares them.
"""

from a1_contract.components import (
    ActionBounds,
    CommandRanges,
    ContractError,
    DomainRandomization,
    ObsTerm,
    Terminations,
)
from a1_contract.contract import TaskContract
from a1_contract.document import SCHEMA_VERSION
from a1_contract.variants import (
    DEFAULT_VARIANT,
    VARIANTS,
    get_contract,
    isaaclab3_bounds,
    joint_limit_bounds,
    ppo_percentile_bounds,
)

__all__ = [
    "SCHEMA_VERSION",
    "ActionBounds",
    "CommandRanges",
    "ContractError",
    "DEFAULT_VARIANT",
    "DomainRandomization",
    "ObsTerm",
    "TaskContract",
    "Terminations",
    "VARIANTS",
    "get_contract",
    "isaaclab3_bounds",
    "joint_limit_bounds",
    "ppo_percentile_bounds",
]
