"""The embedded MuJoCo A1: the model built from the URDF and the contract, the batched training env (an SB3
``VecEnv`` on ``mujoco.rollout``) and the renderer. The emulated robot and the export's parity check build on it
too."""
