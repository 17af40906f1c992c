"""Fine-tune stage: the robot-side actor node (the policy node, exploring and recording) and the workstation
learner, CurveZMQ between them; fine-tuning as an SB3 extension (:mod:`finetune.anchored`)."""
