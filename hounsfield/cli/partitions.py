"""`hounsfield partition`: add, list, change and remove partitions (tenants with own AE titles)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hounsfield.catalog import partitions as rows
from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table
from hounsfield.db import engine as db

app = typer.Typer(help="Partitions: own AE title, port and policies.", no_args_is_help=True)
_DEFAULT = "default"

PortOpt = Annotated[int | None, typer.Option(help="The partition's own DIMSE port.")]
TlsPortOpt = Annotated[
    int | None, typer.Option(help="The partition's own DICOM TLS port (the node's certificate).")
]
DescOpt = Annotated[str | None, typer.Option(help="Free text.")]
DupOpt = Annotated[
    str | None,
    typer.Option(help="keep, overwrite or reject; 'default' follows the node's setting."),
]
CallerOpt = Annotated[
    str | None, typer.Option(help="any or known; 'default' follows the node's setting.")
]
AcceptOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated AE or AE@host allowed to call; '' lets anyone."),
]
MemberOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--member",
        help="Virtual: a member, in precedence order (repeat): a partition, or device:AE.",
    ),
]
CacheOpt = Annotated[
    str | None, typer.Option(help="Virtual: keep fetched objects in this local partition.")
]
TimeoutOpt = Annotated[
    float | None, typer.Option(help="Virtual: seconds each remote member gets to answer.")
]


def _policy(value: str | None) -> str | None:
    """A policy option: None for 'default' (follow the node), otherwise as given."""
    return None if value is None or value.strip().lower() == _DEFAULT else value.strip()


def _accept(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


@app.command("add")
def partition_add(
    ae_title: str,
    port: PortOpt = None,
    tls_port: TlsPortOpt = None,
    description: DescOpt = None,
    duplicate_policy: DupOpt = None,
    caller_policy: CallerOpt = None,
    accept_from: AcceptOpt = None,
    virtual: Annotated[
        bool, typer.Option("--virtual", help="Answer for --member partitions and devices.")
    ] = False,
    member: MemberOpt = None,
    cache_to: CacheOpt = None,
    member_timeout: TimeoutOpt = None,
) -> None:
    """Add a partition answering to AE_TITLE (a virtual one answers for its members)."""
    with archive() as opened, db.write(opened.engine) as conn:
        rows.add(
            conn,
            ae_title,
            port=port,
            tls_port=tls_port,
            description=description or "",
            duplicate_policy=_policy(duplicate_policy),
            caller_policy=_policy(caller_policy),
            accept_from=_accept(accept_from) if accept_from is not None else None,
            kind=rows.VIRTUAL if virtual else rows.LOCAL,
            members=list(member or []),
            cache_to=cache_to,
            member_timeout=member_timeout,
        )
    kind = "virtual partition" if virtual else "partition"
    console.print(f"added {kind} {ae_title.strip()}", markup=False)


@app.command("set")
def partition_set(
    ae_title: str,
    port: PortOpt = None,
    no_port: Annotated[bool, typer.Option("--no-port", help="Drop the own port.")] = False,
    tls_port: TlsPortOpt = None,
    no_tls_port: Annotated[
        bool, typer.Option("--no-tls-port", help="Drop the own TLS port.")
    ] = False,
    description: DescOpt = None,
    duplicate_policy: DupOpt = None,
    caller_policy: CallerOpt = None,
    accept_from: AcceptOpt = None,
    member: MemberOpt = None,
    cache_to: CacheOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Keep no fetched copies.")] = False,
    member_timeout: TimeoutOpt = None,
) -> None:
    """Change some of a partition's settings; options not given stay as they are (a virtual
    partition's --member options replace its members)."""
    fields: dict[str, Any] = {}
    if port is not None or no_port:
        fields["port"] = None if no_port else port
    if tls_port is not None or no_tls_port:
        fields["tls_port"] = None if no_tls_port else tls_port
    if description is not None:
        fields["description"] = description
    if duplicate_policy is not None:
        fields["duplicate_policy"] = _policy(duplicate_policy)
    if caller_policy is not None:
        fields["caller_policy"] = _policy(caller_policy)
    if accept_from is not None:
        fields["accept_from"] = _accept(accept_from)
    if member:
        fields["members"] = list(member)
    if cache_to is not None or no_cache:
        fields["cache_to"] = None if no_cache else cache_to
    if member_timeout is not None:
        fields["member_timeout"] = member_timeout
    with archive() as opened, db.write(opened.engine) as conn:
        rows.change(conn, ae_title, **fields)
    console.print(f"updated partition {ae_title.strip()}", markup=False)


@app.command("remove")
def partition_remove(ae_title: str) -> None:
    """Remove a partition that holds no studies (never the node's default one)."""
    with archive() as opened, db.write(opened.engine) as conn:
        rows.remove(conn, ae_title, opened.default_partition)
    console.print(f"removed partition {ae_title.strip()}", markup=False)


@app.command("list")
def partition_list(as_json: JsonOpt = False) -> None:
    """Every partition with its port and policies ('(node)': follows the node's setting)."""
    with archive() as opened, db.read(opened.engine) as conn:
        found = rows.load_all(conn, opened.settings)
    if as_json:
        print_json(p.to_dict() for p in found)
        return
    rows_table(
        (
            "AE title",
            "port",
            "TLS port",
            "duplicates",
            "callers",
            "accept from",
            "members",
            "description",
        ),
        (
            (
                p.ae_title,
                str(p.port) if p.port is not None else "-",
                str(p.tls_port) if p.tls_port is not None else "-",
                _shown(p.duplicate_policy, p.own_duplicate_policy),
                _shown(p.caller_policy, p.own_caller_policy),
                ", ".join(p.accept_from) or "anyone",
                _members(p),
                p.description or "-",
            )
            for p in found
        ),
    )


def _members(p: rows.Partition) -> str:
    """A virtual partition's members (and cache), '-' for a local one."""
    if not p.virtual:
        return "-"
    text = ", ".join(p.members)
    return f"{text}; cache {p.cache_to}" if p.cache_to else text


def _shown(effective: str, own: str | None) -> str:
    return f"{effective} (node)" if own is None else effective
