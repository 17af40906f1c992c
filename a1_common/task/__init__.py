"""The A1 velocity task's maths, shared by the training env and the robot side: observations, rewards,
commands, batched rotations. numpy only; the contract says what each term is."""
