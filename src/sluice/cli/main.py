"""The ``sluice`` command. Each command group lives in its own module; this one wires them and
turns every ``SluiceError`` into one line on stderr and the exit code the contract assigns.

Conventions every command follows (docs/cli.md, "Conventions"):
- Errors are one ``error: …`` line on stderr; usage errors (unknown option, missing argument)
  too, with the command's ``--help`` named, exit 3. A bare ``sluice`` (or group) prints its help, exit 0.
- Every list/show command takes ``--json``; a ``--json``/report path of ``-`` means standard
  output (``cli.output.write_json``).
- Help shows ``--option NAME`` placeholders, never types (``<str>``), and nothing for flags.
- Release filters accept every form the output shows: ``name@version``, ``name``, a short or full
  ``sha256:`` digest (``cli.refs``); an unknown release is an error naming it, exit 3.
- Numbers are never truncated: tables fold columns instead of cutting digits.
"""

from __future__ import annotations

import sys

import typer

from sluice import __version__
from sluice.cli import context
from sluice.errors import ExitCode, SluiceError

app = typer.Typer(
    name="sluice",
    help="Gate, route, observe and roll out LLM releases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    config: str = typer.Option(None, "--config", "-c", help="Path to sluice.yaml (default ./sluice.yaml or $SLUICE_CONFIG)."),
    store: str = typer.Option(None, "--store", help="Store URL (overrides config and $SLUICE_STORE)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    context.configure(config_path=config, store_url=store)


def _register() -> None:
    from sluice.cli import alerts, audit, dataset, demo, drift, gate, init, keys, metrics, release, rollout, serve

    dataset.app.command("from-traces", help=metrics.dataset_from_traces.__doc__)(metrics.dataset_from_traces)
    app.add_typer(release.app, name="release", help="Register, list, show and diff releases.")
    app.add_typer(dataset.app, name="dataset", help="Import, list, show, export and sample datasets.")
    app.command("gate", help=gate.gate.__doc__)(gate.gate)
    app.command("demo", help=demo.demo.__doc__)(demo.demo)
    app.command("init", help=init.init.__doc__)(init.init)
    app.command("serve", help=serve.serve.__doc__)(serve.serve)
    app.command("metrics", help=metrics.metrics.__doc__)(metrics.metrics)
    app.add_typer(keys.app, name="keys", help="Create, list and revoke API keys.")
    app.command("audit", help=audit.audit.__doc__)(audit.audit)
    app.command("drift", help=drift.drift.__doc__)(drift.drift)
    app.add_typer(rollout.app, name="rollout", help="Start, watch and steer rollouts.")
    app.add_typer(alerts.app, name="alerts", help="List open and recent alerts of the monitors.")


def main(argv: list[str] | None = None) -> int:
    _register()
    # typer bundles its own click: its exceptions are not the click package's
    from typer._click.exceptions import ClickException
    from typer.exceptions import Abort

    from typer._click.exceptions import NoArgsIsHelpError

    try:
        code = _command()(args=argv, prog_name="sluice", standalone_mode=False)
        if isinstance(code, int):  # a command's typer.Exit(code) comes back as the return value
            return code
    except SluiceError as e:
        context.console_err().print(f"[bold red]error:[/] {_escape(str(e))}", highlight=False)
        return int(e.exit_code)
    except KeyboardInterrupt:
        context.console_err().print("interrupted")
        return 130
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except SystemExit as e:
        return int(e.code or 0) if isinstance(e.code, int) else ExitCode.USAGE
    except Abort:
        return 130
    except NoArgsIsHelpError as e:  # a bare ``sluice`` or ``sluice keys``: the help is the answer
        typer.echo(e.format_message())
        return 0
    except ClickException as e:  # unknown option, missing argument, no such command: one line
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        context.console_err().print(f"[bold red]error:[/] {_escape(e.format_message())}{_escape(hint)}",
                                    highlight=False)
        return int(ExitCode.USAGE)
    finally:
        context.close()
    return 0


def _command():
    """The click command tree, with plain placeholders in help (``--since SINCE``, flags bare)."""
    from typer.main import get_command

    cmd = get_command(app)
    _plain_metavars(cmd)
    return cmd


def _plain_metavars(cmd) -> None:
    for p in cmd.params:
        if p.param_type_name == "argument":  # usage and rows say NAME ({NAME}: required); no type column
            p.metavar = p.metavar or p.name.upper().replace("_", "-")
            p.display_type_rich = lambda ctx: None
        elif p.metavar is None:
            p.metavar = "" if getattr(p, "is_flag", False) else p.name.upper().replace("_", "-")
    make_help_option = cmd.get_help_option

    def help_option(ctx):
        opt = make_help_option(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    cmd.get_help_option = help_option
    for sub in (getattr(cmd, "commands", None) or {}).values():
        _plain_metavars(sub)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
