"""ROS 2 bridge for the A1: policy node, safety layer, emulated A1 (not built yet, issue 5)."""
