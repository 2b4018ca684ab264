"""Configuration reading: Pulumi.yaml's key schema and the stack files (`stackfile`, `stack_file`), how a
value is read and bounded (`reader`, `limits`), the rules and per-environment decisions (`sections`),
the typed, frozen `Settings` every other package reads (`settings`, loaded once by `load`), and the
physical names with their AWS limits (`naming`). Imports nothing of the project but `controls` and
the app database model (`components.pgmodel`, plain data)."""
