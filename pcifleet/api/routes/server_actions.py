"""Compute server actions (``POST /servers/{id}/action``), the console log and
the instance action history (``os-instance-actions``).

Each handler parses, checks the caller, makes one call into
``pcifleet.compute`` and serializes. The console is a round trip to the
server's host: the request waits (asynchronously, holding no thread or
connection) for the agent's answer. A locked server's changes are refused
here for non-admins (``pcifleet.compute.locks``) before anything is asked;
rebuild answers with the server's view, as Nova's does.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.api.action_bodies import Rebuild, lock_reason, rebuild_args
from pcifleet.api.catalog import base_url
from pcifleet.api.deps import (
    Context,
    ContextDep,
    MicroversionDep,
    SessionDep,
    SettingsDep,
    timestamp,
)
from pcifleet.api.errors import BadRequest, NotFound, Unavailable
from pcifleet.api.move_bodies import evacuate_host, live_host, move_args
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.api.server_views import ViewParts, one_view, rebuild_view, server_row
from pcifleet.compute import actions, evacuate, events, live, locks, moves, rebuild
from pcifleet.compute.delete import request_delete
from pcifleet.compute.locks import refuse_if_locked
from pcifleet.compute.lookup import flavor_snapshot, specs_of, visible_flavor
from pcifleet.compute.move_disks import sweep_copies
from pcifleet.compute.release import tell_scheduler
from pcifleet.compute.schemas import nul_path
from pcifleet.compute.states import Action
from pcifleet.compute.transitions import KEEP
from pcifleet.compute.worker import run_job_now
from pcifleet.store.models import Instance, Task

router = APIRouter(tags=["compute"])
# How long a console request waits for the host's agent.
CONSOLE_WAIT_SECONDS = 15.0
CONSOLE_POLL_SECONDS = 0.1


def _server(session: Session, ctx: Context, server_id: str, *, deleted: bool = False) -> Instance:
    inst = session.get(Instance, server_id)
    hidden = inst is None or (inst.vm_state == "deleted" and not deleted)
    if hidden or inst is None or not ctx.may_see(inst.project_id or ""):
        raise NotFound(f"Instance {server_id[:64]} could not be found.")
    return inst


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "req-unknown")


def _one_action(body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest(
            'The action body must be an object with exactly one action, e.g. {"os-stop": null}'
        )
    ((name, args),) = body.items()
    return str(name)[:64], args


def _reboot_key(args: Any) -> str:
    kind = args.get("type") if isinstance(args, dict) else None
    if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
        raise BadRequest("Invalid input for field 'reboot.type': must be 'SOFT' or 'HARD'")
    return f"reboot:{kind.upper()}"


def _console_length(args: Any) -> int | None:
    if args is None:
        return None
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field 'os-getConsoleOutput': must be an object")
    length = args.get("length")
    if length is None:
        return None
    try:
        value = int(length)
    except (TypeError, ValueError):
        raise BadRequest(
            "Invalid input for field 'os-getConsoleOutput.length': not an integer"
        ) from None
    if value < -1 or value > actions.CONSOLE_MAX_LINES:
        raise BadRequest(
            f"Invalid input for field 'os-getConsoleOutput.length': must be -1 to "
            f"{actions.CONSOLE_MAX_LINES}"
        )
    return None if value == -1 else value


@router.post(PREFIX + "/servers/{server_id}/action", response_model=None)
async def server_action(
    server_id: str,
    request: Request,
    settings: SettingsDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    background: BackgroundTasks,
) -> Any:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, or nested past the decoder's depth
        raise BadRequest("Malformed request body: not valid JSON") from None
    where = nul_path(body)
    if where is not None:
        raise BadRequest(f"Invalid input for field '{where[:128]}': holds a NUL character")
    name, args = _one_action(body)
    engine: Engine = request.app.state.engine
    if name == "os-getConsoleOutput":
        length = _console_length(args)
        task_id = await run_in_threadpool(_ask_console, engine, ctx, server_id, length)
        output = await _wait_console(engine, task_id)
        return {"output": output}
    if name == "forceDelete":
        await run_in_threadpool(
            _delete, engine, ctx, server_id, _request_id(request), settings.host_down_after_seconds
        )
        return Response(status_code=202)
    if name in MOVES:
        return await _move(request, settings, ctx, mv, background, server_id, name, args)
    if name in _HOST_MOVES:
        return await _host_move(request, settings, ctx, mv, background, server_id, name, args)
    if name == "os-resetState":
        ctx.require_admin("os_compute_api:os-admin-actions:reset_state")
        state = args.get("state") if isinstance(args, dict) and len(args) == 1 else None
        if not isinstance(state, str):
            raise BadRequest(
                'Invalid input for field \'os-resetState\': give {"state": "active"} or '
                '{"state": "error"}'
            )
        await run_in_threadpool(_reset, engine, ctx, server_id, state)
        return Response(status_code=202)
    if name in ("lock", "unlock"):
        reason = lock_reason(args, mv) if name == "lock" else None
        await run_in_threadpool(_lock, engine, ctx, server_id, name, reason, _request_id(request))
        return Response(status_code=202)
    if name == "rebuild":
        spec = rebuild_args(args, mv)
        view = await run_in_threadpool(
            _rebuild, engine, ctx, mv, server_id, spec, _request_id(request), settings,
            base_url(request, settings),
        )  # fmt: skip
        return JSONResponse({"server": view}, status_code=202)
    key = _reboot_key(args) if name == "reboot" else name
    action = actions.action_for(key)
    await run_in_threadpool(
        _act, engine, ctx, server_id, action, _request_id(request), settings.host_down_after_seconds
    )
    return Response(status_code=202)


MOVES = ("migrate", "resize", "confirmResize", "revertResize")


async def _move(
    request: Request,
    settings: Any,
    ctx: Context,
    mv: tuple[int, int],
    background: BackgroundTasks,
    server_id: str,
    name: str,
    args: Any,
) -> Response:
    flavor_ref, host = move_args(name, args, mv)
    engine: Engine = request.app.state.engine
    request_id = _request_id(request)
    job_id, freed = await run_in_threadpool(
        _start_move, engine, ctx, server_id, name, flavor_ref, host, request_id, settings
    )
    tell_scheduler(engine, freed)
    if name == "confirmResize":
        # the move is over: the disk it carried through the controller goes
        await run_in_threadpool(sweep_copies, engine, settings.data_dir, server_id)
    if job_id is not None:
        _kick(request, settings, background, job_id)
    return Response(status_code=204 if name == "confirmResize" else 202)


def _start_move(
    engine: Engine,
    ctx: Context,
    server_id: str,
    name: str,
    flavor_ref: str | None,
    host: str | None,
    request_id: str,
    settings: Any,
) -> tuple[int | None, str | None]:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        refuse_if_locked(inst, ctx)
        if name == "confirmResize":
            return None, moves.confirm(session, ctx, inst.uuid, request_id=request_id)
        if name == "revertResize":
            moves.revert(session, ctx, inst.uuid, request_id=request_id)
            return None, None
        if name == "migrate" or host is not None:
            ctx.require_admin(f"os_compute_api:os-migrate-server:{name}")
        kwargs: dict[str, Any] = {}
        if flavor_ref is not None:
            try:
                flavor = visible_flavor(session, ctx, flavor_ref)
            except NotFound:
                raise BadRequest(f"Unable to find flavor {flavor_ref[:64]}.") from None
            kwargs = {
                "new_flavor": flavor,
                "flavor_snapshot": flavor_snapshot(flavor),
                "extra_specs": specs_of(flavor),
                "aliases": settings.aliases,
            }
        job_id = moves.request_move(
            session,
            ctx,
            inst.uuid,
            request_id=request_id,
            host_down_after=settings.host_down_after_seconds,
            host=host,
            **kwargs,
        )
        return job_id, None


# Moves that name at most a host: how the host is read from the body, the
# policy, the compute call and the answer's status. Nova answers evacuate with
# 200 (before 2.14 with the admin password, which pcifleet's images have no
# agent to set), a live migration with 202.
_HOST_MOVES: dict[str, tuple[Callable[..., str | None], str, Callable[..., int], int]] = {
    "evacuate": (evacuate_host, "os_compute_api:os-evacuate", evacuate.request_evacuate, 200),
    "os-migrateLive": (
        live_host,
        "os_compute_api:os-migrate-server:migrate_live",
        live.request_live_migration,
        202,
    ),
}


async def _host_move(
    request: Request,
    settings: Any,
    ctx: Context,
    mv: tuple[int, int],
    background: BackgroundTasks,
    server_id: str,
    name: str,
    args: Any,
) -> Response:
    read_host, policy, ask, status = _HOST_MOVES[name]
    host = read_host(args, mv)
    engine: Engine = request.app.state.engine
    request_id = _request_id(request)

    def start() -> int:
        ctx.require_admin(policy)
        with Session(engine) as session, session.begin():
            inst = _server(session, ctx, server_id)
            return ask(
                session,
                ctx,
                inst.uuid,
                request_id=request_id,
                host_down_after=settings.host_down_after_seconds,
                host=host,
            )

    job_id = await run_in_threadpool(start)
    _kick(request, settings, background, job_id)
    return Response(status_code=status)


def _kick(request: Request, settings: Any, background: BackgroundTasks, job_id: int) -> None:
    """Run the job now: inline after the response, or by waking a worker."""
    engine: Engine = request.app.state.engine
    if settings.run_jobs_inline:
        background.add_task(run_job_now, engine, job_id, settings.compute_config())
    else:
        worker = getattr(request.app.state, "worker", None)
        if worker is not None:
            worker.kick()


def _act(
    engine: Engine,
    ctx: Context,
    server_id: str,
    action: Action,
    request_id: str,
    down_after: float,
) -> None:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        refuse_if_locked(inst, ctx)
        actions.request_action(
            session,
            inst.uuid,
            action,
            request_id=request_id,
            user_id=ctx.user_id,
            project_id=ctx.project_id,
            host_down_after=down_after,
        )


def _lock(
    engine: Engine, ctx: Context, server_id: str, name: str, reason: str | None, request_id: str
) -> None:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        if name == "lock":
            locks.lock(session, ctx, inst.uuid, reason=reason, request_id=request_id)
        else:
            locks.unlock(session, ctx, inst.uuid, request_id=request_id)


def _rebuild(
    engine: Engine,
    ctx: Context,
    mv: tuple[int, int],
    server_id: str,
    spec: Rebuild,
    request_id: str,
    settings: Any,
    base: str,
) -> dict[str, Any]:
    with Session(engine) as session:
        with session.begin():
            inst = _server(session, ctx, server_id)
            refuse_if_locked(inst, ctx)
            rebuild.request_rebuild(
                session,
                ctx,
                inst.uuid,
                spec.image_id,
                name=spec.name,
                details=spec.details,
                key_name=spec.key_name if spec.key_given else KEEP,
                request_id=request_id,
                host_down_after=settings.host_down_after_seconds,
            )
        row = server_row(session, inst.uuid)
        if row is None:  # deleted meanwhile
            raise NotFound(f"Instance {inst.uuid} could not be found.")
        parts = ViewParts(ctx, mv, base, settings.host_down_after_seconds)
        view = rebuild_view(one_view(session, row, parts), mv)
    if settings.enable_instance_password:
        view["adminPass"] = spec.admin_pass or secrets.token_urlsafe(9)
    if mv >= (2, 57):
        view["user_data"] = row.user_data
    return view


def _reset(engine: Engine, ctx: Context, server_id: str, state: str) -> None:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        actions.reset_state(session, inst.uuid, state)


def _delete(
    engine: Engine, ctx: Context, server_id: str, request_id: str, down_after: float
) -> None:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        refuse_if_locked(inst, ctx)
        freed = request_delete(
            session,
            inst.uuid,
            request_id=request_id,
            user_id=ctx.user_id,
            project_id=ctx.project_id,
            host_down_after=down_after,
            force=True,
        )
    tell_scheduler(engine, freed)


def _ask_console(engine: Engine, ctx: Context, server_id: str, length: int | None) -> int:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        return actions.request_console(session, inst.uuid, length)


def _console_state(engine: Engine, task_id: int) -> tuple[str, dict[str, Any] | None]:
    with engine.connect() as conn:
        row = conn.execute(select(Task.state, Task.result).where(Task.id == task_id)).first()
    return (row.state, row.result) if row is not None else ("cancelled", None)


def _cancel_console(engine: Engine, task_id: int) -> None:
    with Session(engine) as session, session.begin():
        task = session.get(Task, task_id)
        if task is not None and task.state in ("pending", "running"):
            task.state = "cancelled"


async def _wait_console(engine: Engine, task_id: int) -> str:
    deadline = time.monotonic() + CONSOLE_WAIT_SECONDS
    while time.monotonic() < deadline:
        state, result = await run_in_threadpool(_console_state, engine, task_id)
        if state == "done":
            output = ((result or {}).get("details") or {}).get("output", "")
            return str(output)
        if state in ("failed", "cancelled"):
            why = (result or {}).get("message") or "the host could not read the console"
            raise BadRequest(f"Console output is not available: {why}")
        await asyncio.sleep(CONSOLE_POLL_SECONDS)
    await run_in_threadpool(_cancel_console, engine, task_id)
    raise Unavailable(
        f"The server's host did not send its console within {CONSOLE_WAIT_SECONDS:.0f} s; retry.",
        retry_after=5,
    )


def _action_view(a: Any, mv: tuple[int, int]) -> dict[str, Any]:
    view = {
        "action": a.action,
        "instance_uuid": a.instance_uuid,
        "request_id": a.request_id,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "start_time": timestamp(a.start_time),
        "message": a.message,
    }
    if mv >= (2, 58):
        view["updated_at"] = timestamp(a.updated_at)
    return view


def _event_view(e: Any, ctx: Context, mv: tuple[int, int]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "event": e.event,
        "start_time": timestamp(e.start_time),
        "finish_time": timestamp(e.finish_time) if e.finish_time else None,
        "result": e.result,
    }
    if ctx.is_admin:
        view["traceback"] = e.details if e.result == events.ERROR else None
    if mv >= (2, 62):
        if ctx.is_admin:
            view["host"] = e.host or ""
        view["hostId"] = ""
    if mv >= (2, 84):
        view["details"] = e.details
    return view


@router.get(PREFIX + "/servers/{server_id}/os-instance-actions")
def list_instance_actions(
    server_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    inst = _server(session, ctx, server_id, deleted=mv >= (2, 21))
    return {"instanceActions": [_action_view(a, mv) for a in events.actions_of(session, inst.uuid)]}


@router.get(PREFIX + "/servers/{server_id}/os-instance-actions/{request_id}")
def show_instance_action(
    server_id: str, request_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    inst = _server(session, ctx, server_id, deleted=mv >= (2, 21))
    found = [a for a in events.actions_of(session, inst.uuid) if a.request_id == request_id]
    if not found:
        raise NotFound(f"Action {request_id[:64]} on instance {inst.uuid} could not be found.")
    action = found[0]
    view = _action_view(action, mv)
    view["events"] = [_event_view(e, ctx, mv) for e in events.events_of(session, action.id)]
    return {"instanceAction": view}
