"""One module per agent, each with an `install(hub)` the worker finds through the
`hotelhub.agents` entry points (pyproject.toml); importing this package registers nothing."""
