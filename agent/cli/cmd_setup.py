"""``edge-agent setup``: user, directories, systemd unit, example config, warm kernel cache, check."""

from __future__ import annotations

from pathlib import Path

import click

MARKS = {"changed": "+", "ok": "=", "planned": "~", "warning": "!", "check": " ", "progress": ">"}


@click.command("setup")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Lay everything out under this directory; create no user and run no systemctl (listed instead).")
@click.option("--config", "config_source", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Install this config as /etc/edge-agent/config.toml (the previous one is kept as config.toml.bak); "
                   "without it the annotated example is installed when no config is there.")
@click.option("--credential-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Root-only file holding the MQTT password: the unit loads it with LoadCredential=.")
@click.option("--credential-name", default="mqtt-password", show_default=True,
              help="Credential name, as the config refers to it: ${cred:NAME}.")
@click.option("--enable", is_flag=True, help="Enable and start the service once the config check passes.")
@click.option("--web-password", is_flag=True, help="Set the web page's login password (asked twice; one line on "
                                                    "standard input when that is not a terminal), stored hashed.")
def command(root: Path | None, config_source: Path | None, credential_file: Path | None, credential_name: str,
            enable: bool, web_password: bool) -> None:
    """Set this machine up to run the agent as a service, in one idempotent command.

    Creates the system user edge-agent (in the dialout, i2c and gpio groups that exist), the state
    directory /var/lib/edge-agent and config directory /etc/edge-agent, installs the systemd unit,
    installs the example config when there is none, compiles the processing kernels into the state
    directory's cache as the service user, and runs `check`. A second run changes nothing.
    """
    from ..setup.install import EXIT_CHECK_FAILED, SetupOptions, next_steps, setup
    from ..setup.steps import Report, SetupError

    opts = SetupOptions(root=root.absolute() if root else None, config_source=config_source,
                        credential_file=credential_file, credential_name=credential_name, enable=enable)
    if root is not None:
        click.echo(f"setting up under {opts.root} (--root: no users created, no systemctl; those are listed with ~)")
    report = Report(echo=lambda kind, text: click.echo(f"{MARKS[kind]} {text}"))
    secret = _ask_web_password() if web_password else None
    try:
        passed = setup(opts, report)
        if secret is not None:
            from ..setup.web_password import install_web_password

            install_web_password(report, opts, secret)
    except SetupError as e:
        click.echo(f"setup failed: {e}", err=True)
        raise SystemExit(1) from None
    click.echo("done: " + ("changes made (+ above)" if report.any_changed else "nothing to change, all was in place"))
    click.echo("next:")
    for step in next_steps(opts, passed):
        click.echo(f"  - {step}")
    if not passed:
        raise SystemExit(EXIT_CHECK_FAILED)


def _ask_web_password() -> str:
    import sys

    from ..web.password import MIN_LENGTH

    if sys.stdin.isatty():
        text = click.prompt("web page password", hide_input=True, confirmation_prompt=True)
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    if len(text) < MIN_LENGTH:
        raise click.UsageError(f"--web-password: the password must have at least {MIN_LENGTH} characters")
    return text
