"""Pure logic: rollout engine, analysis judge, statistics. No I/O."""
