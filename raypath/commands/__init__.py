"""CLI subcommands, one module per pipeline stage: `add_arguments(parser)` and `run(args) -> int`.

Thin on purpose: a module declares its flags (`raypath.commands.flags.Flag`), loads its stage's
config from `--config`, `--set` and the flags, and calls the stage. One-line help for each command
lives in `raypath.cli.COMMANDS`; the help of a flag is its config field's description.
"""
