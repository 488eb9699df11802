"""`hounsfield user`: add, list, remove local users of the HTTP interfaces; change passwords."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hounsfield.auth import users
from hounsfield.auth.policy import ROLES
from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table

app = typer.Typer(help="Users of the admin pages, the viewer and DICOMweb.", no_args_is_help=True)

StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
RoleOpt = Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")]
PartitionOpt = Annotated[
    list[str] | None,
    typer.Option("--partition", help="A partition (AE title) the user may reach (repeat)."),
]


def read_password(from_stdin: bool) -> str:
    """The new password: from standard input, or asked twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def user_add(
    name: str, role: RoleOpt, partition: PartitionOpt = None, password_stdin: StdinOpt = False
) -> None:
    """Add a user; without --partition they reach every partition."""
    password = read_password(password_stdin)
    with archive() as arch:
        added = users.add(arch.engine, name, password, role, partition or None)
    where = ", ".join(added.partitions) if added.partitions else "every partition"
    console.print(f"user {added.name} added: {added.role}, {where}", markup=False)


@app.command("list")
def user_list(json_output: JsonOpt = False) -> None:
    """List users."""
    with archive() as arch:
        found = users.list_users(arch.engine)
    if json_output:
        print_json(found)
        return
    rows_table(
        ("name", "role", "partitions", "created", "disabled"),
        (
            (
                u.name,
                u.role,
                ", ".join(u.partitions) if u.partitions else "*",
                u.created_at.strftime("%Y-%m-%d %H:%M"),
                "yes" if u.disabled else "",
            )
            for u in found
        ),
    )


@app.command("remove")
def user_remove(name: str) -> None:
    """Remove a user with their API tokens and web sessions."""
    with archive() as arch:
        users.remove(arch.engine, name)
    console.print(f"user {name} removed", markup=False)


@app.command("passwd")
def user_passwd(name: str, password_stdin: StdinOpt = False) -> None:
    """Set a user's password (their web sessions end)."""
    password = read_password(password_stdin)
    with archive() as arch:
        users.passwd(arch.engine, name, password)
    console.print(f"password of {name} changed", markup=False)
