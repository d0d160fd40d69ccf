"""The application: the runner that drives the core, and the wiring of daemon, replay, reload."""
