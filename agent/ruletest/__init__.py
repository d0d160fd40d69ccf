"""`factory-agent rules test`: rule test files and their runs on a simulated clock."""
