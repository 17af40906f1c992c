"""Fine-tune stage: robot-side actor and workstation learner over zmq (not built yet, issue 6)."""
