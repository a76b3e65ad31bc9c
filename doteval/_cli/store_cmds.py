"""Commands that keep the store healthy and shared: gc, fsck, push, pull."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from doteval._cli.common import JsonOption, StoreOption, app, console, open_store, print_json
from doteval._operations.fsck import fsck as check_store
from doteval._operations.gc import DEFAULT_EXPIRE_DELETED, DEFAULT_PRUNE, collect_garbage, parse_age
from doteval._operations.sync import SyncStats, rsync_commands, store_location
from doteval._operations.sync import pull as pull_store
from doteval._operations.sync import push as push_store
from doteval._text import parse_fraction


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")
    ] = False,
    prune: Annotated[
        str,
        typer.Option(
            "--prune", metavar="AGE", help="Remove unreachable objects older than AGE (now, 2w, 3d...)."
        ),
    ] = "2w",
    expire_deleted: Annotated[
        str,
        typer.Option(
            "--expire-deleted", metavar="AGE", help="Forget deleted experiments deleted over AGE ago."
        ),
    ] = "30d",
    aggressive: Annotated[
        bool,
        typer.Option("--aggressive", help="Also retrain zstd dictionaries and repack everything with them."),
    ] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Remove what no experiment, history or live run can reach; repack the rest."""
    st = open_store(store)
    stats = collect_garbage(
        st,
        prune=parse_age(prune) if prune else DEFAULT_PRUNE,
        expire_deleted=parse_age(expire_deleted) if expire_deleted else DEFAULT_EXPIRE_DELETED,
        aggressive=aggressive,
        dry_run=dry_run,
    )
    if as_json:
        print_json(stats.to_json())
        return
    out = console()
    for path in stats.refused:
        out.print(
            f"[yellow]warning[/]: {escape(path)}: not a plain file or folder (a symbolic link?), not walked",
            soft_wrap=True,
        )
    verb = "Would remove" if dry_run else "Removed"
    out.print(
        f"Kept {stats.reachable} reachable objects ({stats.kept_young} unreachable but younger than --prune)."
    )
    out.print(
        f"{verb} {stats.removed_loose} loose and {stats.removed_packed} packed objects"
        + (
            f", {len(stats.expired_experiments)} expired deleted experiments"
            if stats.expired_experiments
            else ""
        )
        + "."
    )
    if stats.cache_kept or stats.cache_removed:
        gone = "" if dry_run else f", removed {stats.cache_removed}"
        out.print(f"Model call cache: kept {stats.cache_kept} entries{gone}.")
    if not dry_run:
        out.print(
            f"Repacked {stats.repacked} objects into {stats.new_packs} pack(s), replacing {stats.removed_packs}."
            + (f" Dictionary {stats.dictionary[:12]}." if stats.dictionary else "")
        )
        out.print(
            f"Store size {_size(stats.bytes_before)} -> {_size(stats.bytes_after)} "
            f"({_size(stats.bytes_reclaimed)} reclaimed)."
        )


def _parse_subset(text: str | None) -> tuple[int, int] | None:
    return None if text is None else parse_fraction(text, "--subset", "N/T")


@app.command()
def fsck(
    subset: Annotated[
        str | None,
        typer.Option(
            "--subset", metavar="N/T", help="Re-hash only part N of T of the objects (rolling checks)."
        ),
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Re-hash every object and check every pack, manifest, ref and journal."""
    st = open_store(store, reading=True)
    report = check_store(st, subset=_parse_subset(subset))
    if as_json:
        print_json({"store": str(st.root), **report.to_json()})
    else:
        out = console()
        for p in report.problems:
            color = "red" if p.severity == "error" else "yellow"
            out.print(f"[{color}]{p.severity}[/]: {escape(p.path)}: {escape(p.message)}", soft_wrap=True)
            if p.hint:
                out.print(f"  [dim]{escape(p.hint)}[/]", soft_wrap=True)
        summary = (
            f"Checked {report.checked_objects} objects, {report.checked_packs} packs, "
            f"{report.checked_manifests} manifests, {report.checked_refs} experiments: "
        )
        errors = len(report.errors)
        warnings = len(report.problems) - errors
        out.print(
            summary + (f"[red]{errors} error(s)[/]" if errors else "no errors") + f", {warnings} warning(s)."
        )
    if not report.ok:
        raise typer.Exit(1)


def _print_sync(stats: SyncStats, verb: str) -> None:
    out = console()
    out.print(
        f"{verb} {stats.files} file(s), {_size(stats.bytes)} "
        f"({escape(stats.source)} -> {escape(stats.destination)}, {stats.method})."
    )
    for name in stats.merged:
        out.print(f"Joined the lines of {escape(name)} (same code and params).")
    for name in stats.diverged:
        out.print(
            f"[yellow]{escape(name)} moved on both sides with different code or params: both lines are kept[/]; "
            f"`doteval log {escape(name)}` shows them, `doteval keep {escape(name)}@REV` chooses one."
        )


Other = Annotated[
    str, typer.Argument(help="Another store: a .doteval folder, a project folder holding one, or host:path.")
]
NoRsync = Annotated[bool, typer.Option("--no-rsync", help="Copy files directly (local paths only).")]
PrintCommands = Annotated[bool, typer.Option("--print", help="Print the equivalent rsync commands and exit.")]


def _sync(
    store: Path | None, other: str, *, pushing: bool, no_rsync: bool, print_commands: bool, as_json: bool
) -> None:
    st = open_store(store, create=not pushing)  # a pull creates the store it fills
    if print_commands:
        other = store_location(other, destination=pushing)
        src, dst = (str(st.root), other) if pushing else (other, str(st.root))
        for args in rsync_commands(src, dst):
            print(shlex.join(["rsync", *args]))
        return
    run = push_store if pushing else pull_store
    stats = run(st, other, use_rsync=False if no_rsync else None)
    print_json(stats.to_json()) if as_json else _print_sync(stats, "Pushed" if pushing else "Pulled")


@app.command()
def push(
    destination: Other,
    no_rsync: NoRsync = False,
    print_commands: PrintCommands = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Copy this store's new immutable files to another store (objects, packs, then refs)."""
    _sync(store, destination, pushing=True, no_rsync=no_rsync, print_commands=print_commands, as_json=as_json)


@app.command()
def pull(
    source: Other,
    no_rsync: NoRsync = False,
    print_commands: PrintCommands = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Copy another store's new immutable files into this one, then join lines that can be joined."""
    _sync(store, source, pushing=False, no_rsync=no_rsync, print_commands=print_commands, as_json=as_json)
