"""`python -m agent`: the same command line as `factory-agent`."""

from agent.cli import main

raise SystemExit(main())
