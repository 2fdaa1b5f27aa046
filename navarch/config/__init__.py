"""The user's YAML: the config file's pydantic schema (`schema`) and its loader with
cross-checks and warnings (`loader`), instance types (`instance_types`), setup-command
templates (`setup_commands`) and local settings (`settings`).

May import: `navarch.health` (a config names a health policy), the leaf modules.
"""
