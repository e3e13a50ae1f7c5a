"""The command line: parses arguments, calls one action, renders its result, maps errors to exit codes."""
