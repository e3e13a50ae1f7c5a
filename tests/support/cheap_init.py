"""Test-only: run `restic init`, then give the new repository a key file with cheap scrypt parameters.

The argv_recorder shim (tests/support/argv_recorder) starts the hook `install_init_hook` writes instead of the real
restic when restic's arguments hold `init`: the hook runs restic as its child (signals forwarded, same stdin, stdout,
stderr and exit status) and, after a successful init, rewrites the key of the repository restic's own arguments and
environment name (tests/support/cheap_keys.py says why). Any other command, or an init that failed, is left alone.
A rewrite that fails leaves restic's calibrated key (slower, still correct) and says why in LOG_NAME beside the hook;
nothing here prints a secret.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.key_folders import cheapen_repository_keys, key_folder_of

HOOK_NAME = "restic-init-hook"
LOG_NAME = "restic-init-hook.log"
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# restic 0.14's global flags that take a value: the subcommand is the first argument that is no flag nor a value.
FLAGS_WITH_VALUES = frozenset(
    {
        "--cacert",
        "--cache-dir",
        "--compression",
        "--key-hint",
        "--limit-download",
        "--limit-upload",
        "-o",
        "--option",
        "--pack-size",
        "--password-command",
        "-p",
        "--password-file",
        "-r",
        "--repo",
        "--repository-file",
        "--tls-client-cert",
    }
)
REPOSITORY_FLAGS = ("-r", "--repo")
PASSWORD_FILE_FLAGS = ("-p", "--password-file")


def subcommand_of(arguments: Sequence[str]) -> str | None:
    """Return restic's subcommand in `arguments` (global flags may come first), or None when there is none."""
    expects_value = False
    for argument in arguments:
        if expects_value:
            expects_value = False
        elif argument in FLAGS_WITH_VALUES:
            expects_value = True
        elif not argument.startswith("-"):
            return argument
    return None


def flag_value(arguments: Sequence[str], names: Sequence[str]) -> str | None:
    """Return the value of the last of the flags `names` in `arguments` (`-r X`, `--repo X`, `--repo=X`), or None."""
    value = None
    for index, argument in enumerate(arguments):
        name, equals, inline = argument.partition("=")
        if name in names and equals:
            value = inline
        elif argument in names and index + 1 < len(arguments):
            value = arguments[index + 1]
    return value


def repository_of(arguments: Sequence[str], environment: Mapping[str, str]) -> str | None:
    """Return the repository restic opens, as restic resolves it (flag, then RESTIC_REPOSITORY, then a file)."""
    repository = flag_value(arguments, REPOSITORY_FLAGS) or environment.get("RESTIC_REPOSITORY")
    if repository:
        return repository
    file = flag_value(arguments, ("--repository-file",)) or environment.get("RESTIC_REPOSITORY_FILE")
    return Path(file).read_text().strip() if file else None


def password_of(arguments: Sequence[str], environment: Mapping[str, str]) -> str | None:
    """Return the password restic uses, as restic 0.14 resolves it: a password file (flag or RESTIC_PASSWORD_FILE,
    trimmed) before RESTIC_PASSWORD; None for a password command or a prompt (not supported here)."""
    file = flag_value(arguments, PASSWORD_FILE_FLAGS) or environment.get("RESTIC_PASSWORD_FILE")
    if file:
        return Path(file).read_text().strip()
    return environment.get("RESTIC_PASSWORD") or None


def run_forwarding_signals(argv: Sequence[str]) -> int:
    """Run `argv` with this process's stdin, stdout and stderr and return its exit status (negative: the signal
    that ended it). The signals a parent uses to stop it (INT, TERM, HUP, QUIT) are passed on to the child: the
    parent signals this process's id, which an exec'ing shim would have given to restic itself."""
    child = subprocess.Popen(argv)
    previous = {
        number: signal.signal(number, lambda received, _frame: child.send_signal(received))
        for number in FORWARDED_SIGNALS
    }
    try:
        return child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def cheapen_new_repository(arguments: Sequence[str], environment: Mapping[str, str], log: Path) -> None:
    """Rewrite the key of the repository `restic init ARGUMENTS` created; on any failure, append why to `log`."""
    try:
        repository, password = repository_of(arguments, environment), password_of(arguments, environment)
        if not repository or not password:
            raise ValueError("no repository or no password (prompt or command) in restic's arguments/environment")
        cheapen_repository_keys(key_folder_of(repository, environment), password)
    except Exception as error:  # the init succeeded: a slower key is no reason to fail it
        # The type and message only: no traceback, whose frames could show the environment.
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"key left as restic made it: {type(error).__name__}: {error}\n")


def main(arguments: Sequence[str], log: Path) -> int:
    """Run `PROGRAM ARGUMENTS...` (the real restic), cheapen the key after a successful init; return its exit status.

    A child ended by a signal ends this process by the same signal, as an exec'd restic would have ended.
    """
    program, *restic_arguments = arguments
    status = run_forwarding_signals([program, *restic_arguments])
    if status == 0 and subcommand_of(restic_arguments) == "init":
        cheapen_new_repository(restic_arguments, os.environ, log)
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def install_init_hook(folder: Path) -> Path:
    """Write HOOK_NAME into a folder of argv_recorder shims (the shim of `restic` then starts it for an init) and
    return its path. It runs this module with this interpreter, which has the `cryptography` and `boto3` packages."""
    root = Path(__file__).resolve().parents[2]
    hook = folder / HOOK_NAME
    hook.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from pathlib import Path\n"
        "from tests.support.cheap_init import LOG_NAME, main\n"
        "sys.exit(main(sys.argv[1:], Path(__file__).with_name(LOG_NAME)))\n"
    )
    hook.chmod(0o755)
    return hook
