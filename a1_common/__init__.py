"""Utilities every stage of the pipeline shares (below ``pretrain``, ``deploy``, ``robot_bridge``, ``finetune``;
above ``a1_contract``). It imports nothing from the stages."""
