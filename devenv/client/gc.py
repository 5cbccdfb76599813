"""``devenv gc``: what devenv's backends created that no running environment owns.

Every registered backend is built as a worker of this machine builds it and asked
for its ``leftovers()``: everything it created that it can find from here, live or
not. Each is then compared with its environment's workflow:

* **live**: the workflow runs with the leftover's ``instance_token``, or runs and the
  token cannot be compared (not recorded, or the workflow did not answer). Never
  touched: a live environment is never put at risk.
* **orphan**: the workflow does not exist, has ended, or runs another instance
  (a later environment of the same name).

Only orphans are removed, each re-checked just before its removal. A backend that
cannot list (no credentials, a host down) becomes a warning line; the others are
still listed. A backend that reached only some places raises
``LeftoversIncompleteError`` with what it found there and a line per place it missed:
both are kept, so one host down hides nothing of the other hosts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from devenv.backends import registry
from devenv.backends.base import Backend, Leftover, LeftoversIncompleteError
from devenv.client.closed import FORCE_REASON
from devenv.client.lookup import QUERY_TIMEOUT, Handle, fetch_state
from devenv.errors import DevenvError
from devenv.models.state import EnvState
from devenv.settings import Settings

LIST_TIMEOUT = 120.0
"""Seconds one backend may take to list its leftovers before it becomes a warning."""
REMOVE_TIMEOUT = 300.0
"""Seconds one removal may take before it becomes a warning (it may finish later)."""
CONCURRENCY = 8
"""Workflows described, and leftovers removed, at the same time."""

GcStatus = Literal["orphan", "live"]
OnRemoved = Callable[["GcItem"], None]


class GcItem(Leftover):
    """One leftover and what ``devenv gc`` makes of it."""

    status: GcStatus = Field(description="orphan (no running environment owns it) or live.")
    reason: str = Field(description="Why, in a few words.")

    def public(self) -> dict[str, Any]:
        """The item as ``devenv gc --json`` prints it (the backend's own data left out)."""
        return self.model_dump(mode="json", exclude={"data"})


class GcReport(BaseModel):
    """What ``devenv gc`` found, removed, and could not check."""

    leftovers: list[GcItem] = Field(default_factory=list)
    removed: list[GcItem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    _backends: dict[str, Backend] = PrivateAttr(default_factory=dict)

    @property
    def orphans(self) -> list[GcItem]:
        return [item for item in self.leftovers if item.status == "orphan"]

    @property
    def live(self) -> list[GcItem]:
        return [item for item in self.leftovers if item.status == "live"]

    def to_json(self) -> dict[str, Any]:
        """``{"leftovers": [...], "removed": [...], "warnings": [...]}``."""
        return {
            "leftovers": [item.public() for item in self.leftovers],
            "removed": [item.public() for item in self.removed],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Owner:
    """What the server says about the workflow a leftover names."""

    running: bool
    token: str | None
    answered: bool
    reason: str


def build_backends(settings: Settings, warnings: list[str]) -> dict[str, Backend]:
    """Every registered backend as a worker of this machine builds it; failures are warnings."""
    built: dict[str, Backend] = {}
    for name in registry.names():
        try:
            built[name] = registry.backend_class(name).for_worker(settings)
        except Exception as problem:
            warnings.append(f"{name}: not checked: {_line(problem)}")
    return built


async def find_leftovers(
    temporal: Client, settings: Settings, backends: Mapping[str, Backend] | None = None
) -> GcReport:
    """Every backend's leftovers, each classified ``orphan`` or ``live`` (nothing removed)."""
    warnings: list[str] = []
    built = dict(backends) if backends is not None else build_backends(settings, warnings)
    listed = await asyncio.gather(*(_list(name, backend) for name, backend in built.items()))
    found: list[Leftover] = []
    for leftovers, problems in listed:
        found += leftovers
        warnings += problems
    owners = await _owners(temporal, {item.workflow_id for item in found if item.workflow_id})
    items = [_classify(item, owners.get(item.workflow_id or "")) for item in found]
    items.sort(key=lambda item: (item.status != "orphan", item.backend, item.where, item.id))
    report = GcReport(leftovers=items, warnings=warnings)
    report._backends = built
    return report


async def remove(
    temporal: Client,
    settings: Settings,
    report: GcReport,
    on_removed: OnRemoved | None = None,
) -> GcReport:
    """Remove the orphans of ``report``, each re-checked just before; the updated report.

    An orphan that a running environment owns by now is kept (a warning says so), as
    is one whose removal fails.
    """
    warnings = list(report.warnings)
    backends = report._backends or build_backends(settings, warnings)
    removed: list[GcItem] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: GcItem) -> None:
        async with gate:
            owner = await _owner(temporal, item.workflow_id) if item.workflow_id else None
            now = _classify(item, owner)
            if now.status != "orphan":
                warnings.append(f"{_name(item)}: kept: {now.reason} now")
                return
            backend = backends.get(item.backend)
            if backend is None:
                warnings.append(f"{_name(item)}: not removed: backend {item.backend} unavailable")
                return
            leftover = Leftover.model_validate(item.model_dump(exclude={"status", "reason"}))
            try:
                async with asyncio.timeout(REMOVE_TIMEOUT):
                    await backend.remove_leftover(leftover)
            except Exception as problem:
                warnings.append(f"{_name(item)}: not removed: {_line(problem)}")
                return
            removed.append(item)
            if on_removed is not None:
                on_removed(item)

    await asyncio.gather(*(one(item) for item in report.orphans))
    done = report.model_copy(update={"removed": removed, "warnings": warnings})
    done._backends = backends
    return done


async def _list(name: str, backend: Backend) -> tuple[list[Leftover], list[str]]:
    """(leftovers, warning lines) of one backend; a failure never escapes."""
    try:
        async with asyncio.timeout(LIST_TIMEOUT):
            found = await backend.leftovers()
    except TimeoutError:
        return [], [f"{name}: not checked: no answer within {LIST_TIMEOUT:.0f}s"]
    except LeftoversIncompleteError as partial:
        return list(partial.found), [f"{name}: not checked: {line}" for line in partial.problems]
    except Exception as problem:
        return [], [f"{name}: not checked: {_line(problem)}"]
    return list(found), []


async def _owners(temporal: Client, workflow_ids: set[str]) -> dict[str, Owner]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(workflow_id: str) -> tuple[str, Owner]:
        async with gate:
            return workflow_id, await _owner(temporal, workflow_id)

    return dict(await asyncio.gather(*(one(wid) for wid in sorted(workflow_ids))))


async def _owner(temporal: Client, workflow_id: str) -> Owner:
    """Whether ``workflow_id`` runs, and with which instance token.

    A server that cannot be asked raises: without its answer nothing is an orphan.
    """
    handle: Handle = temporal.get_workflow_handle(workflow_id, result_type=EnvState)
    try:
        description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as problem:
        if problem.status == RPCStatusCode.NOT_FOUND and "amespace" not in problem.message:
            return Owner(False, None, True, "no such environment")
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        state = description.status.name.lower() if description.status else "ended"
        return Owner(False, None, True, f"its workflow is {state.replace('_', ' ')}")
    try:
        state_now = await fetch_state(handle)
    except (DevenvError, RPCError, TimeoutError):
        return Owner(True, None, False, "its environment runs but did not answer")
    return Owner(True, state_now.instance_token, True, f"its environment is {state_now.status}")


def _classify(leftover: Leftover, owner: Owner | None) -> GcItem:
    data = leftover.model_dump(exclude={"status", "reason"})
    if leftover.workflow_id is None or owner is None:
        return GcItem(**data, status="live", reason="no environment recorded for it; kept")
    if not owner.running:
        return GcItem(**data, status="orphan", reason=owner.reason)
    if owner.token is None or leftover.instance_token is None:
        return GcItem(**data, status="live", reason=f"{owner.reason}; kept")
    if owner.token == leftover.instance_token:
        return GcItem(**data, status="live", reason=owner.reason)
    return GcItem(**data, status="orphan", reason="its environment runs another instance now")


def _name(item: Leftover) -> str:
    return f"{item.backend} {item.id} ({item.name or item.workflow_id or 'unknown'})"


def _line(problem: BaseException) -> str:
    text = " ".join((getattr(problem, "message", None) or str(problem)).split())
    return text[:300] or type(problem).__name__


class ForcedStop(BaseModel):
    """What ``devenv stop --force`` did: the instance ended outside its workflow, then the
    workflow terminated; what could not be ended is left for ``devenv gc``."""

    workflow_id: str
    removed: list[GcItem] = Field(default_factory=list)
    left: list[str] = Field(
        default_factory=list,
        description="One line per leftover (or place) that could not be ended or searched: "
        "`devenv gc` lists it as an orphan now that the workflow has ended.",
    )
    workflow: str = Field(description="What became of the workflow, in a few words.")


async def force_stop(
    temporal: Client,
    settings: Settings,
    workflow_id: str,
    backend: str | None,
    backends: Mapping[str, Backend] | None = None,
) -> ForcedStop:
    """End the instance of ``workflow_id`` by its records (the backend's leftovers named
    for it), whatever its workflow does, then terminate the workflow.

    For an environment whose workflow cannot act (its tasks keep failing, or its cleanup
    retries a host that will never answer): the one way out that leaves nothing running.
    Only ``backend``'s leftovers are searched when it is known.
    """
    warnings: list[str] = []
    built = dict(backends) if backends is not None else build_backends(settings, warnings)
    if backend is not None:
        built = {name: b for name, b in built.items() if name == backend}
        warnings = [line for line in warnings if line.startswith(f"{backend}:")]
    listed = await asyncio.gather(*(_list(name, b) for name, b in built.items()))
    left = list(warnings)
    mine: list[Leftover] = []
    for leftovers, problems in listed:
        mine += [item for item in leftovers if item.workflow_id == workflow_id]
        left += problems
    removed: list[GcItem] = []
    for item in mine:
        gc_item = GcItem(**item.model_dump(), status="orphan", reason="stopped with --force")
        try:
            async with asyncio.timeout(REMOVE_TIMEOUT):
                await built[item.backend].remove_leftover(item)
        except Exception as problem:
            left.append(f"{_name(item)}: not ended: {_line(problem)}")
            continue
        removed.append(gc_item)
    handle: Handle = temporal.get_workflow_handle(workflow_id, result_type=EnvState)
    try:
        await handle.terminate(reason=FORCE_REASON, rpc_timeout=QUERY_TIMEOUT)
        outcome = "terminated"
    except RPCError as problem:
        if problem.status != RPCStatusCode.NOT_FOUND or "amespace" in problem.message:
            raise
        outcome = "had already ended"
    return ForcedStop(workflow_id=workflow_id, removed=removed, left=left, workflow=outcome)
