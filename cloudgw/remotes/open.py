"""Configured remotes -> one Remote: a single remote as is, several behind a router."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol
from cloudgw.remotes.base import Remote
from cloudgw.remotes.instrumented import InstrumentedRemote, Observer
from cloudgw.remotes.crypt_guard import guard_plain
from cloudgw.remotes.registry import Common, masked_url, open_remote
from cloudgw.remotes.router import RouterRemote


class RemoteSpec(Protocol):
    """What the remotes layer needs of a configured remote (``cloudgw.config.RemoteSpec``)."""

    url: str
    options: Mapping[str, Any]
    where: str


def open_remotes(specs: Mapping[str, RemoteSpec], common: Common = Common(), *,
                 observer: Observer | None = None) -> Remote:
    """Build (but do not contact) the configured remotes: ``{"": spec}`` is one remote at
    the mount's root; named specs become one top-level folder each.  With ``observer``
    (metrics), each remote is wrapped in an ``InstrumentedRemote`` under its name (``""``
    for the single remote), below the router, so requests are told apart per remote."""
    remotes = {name: guard_plain(open_remote(spec.url, spec.options, _for(common, name), where=spec.where),
                                 masked_url(spec.url))
               for name, spec in specs.items()}
    if observer is not None:
        remotes = {name: InstrumentedRemote(remote, name, observer) for name, remote in remotes.items()}
    return remotes[""] if list(remotes) == [""] else RouterRemote(remotes)


def _for(common: Common, name: str) -> Common:
    """``common`` with the remote's name and a state folder of its own (``_`` for the one
    remote at the root)."""
    state_dir = common.state_dir / (name or "_") if common.state_dir is not None else None
    return dataclasses.replace(common, state_dir=state_dir, name=name)
