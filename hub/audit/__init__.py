"""The tamper-evident record: the hub's keys, sealed and signed messages, checkpoints, checks."""
