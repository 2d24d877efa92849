"""The shared kernel every layer may import: errors and their gRPC codes, clocks, call deadlines, NQN and host
rules, address value types. It imports nothing from the project but ``rds_csi`` itself and ``_native``."""
