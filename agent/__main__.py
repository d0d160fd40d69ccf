"""`python -m agent`: the same command line as `factory-agent`."""

from agent.cli.main import main

# Guarded: the engine worker is a spawned process, which imports this module again.
if __name__ == "__main__":
    raise SystemExit(main())
