"""Starting and stopping the stack: waves of services, health waits, and the way down."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import psutil

from infra.errors import ServiceStartError, StackRunningError
from infra.processes import child_environment, exit_code, log_tail, spawn, stop_together
from infra.stack.config import ENV_FILE, SERVING, STATE_FILE, WAITING_FOR_CHAMPION, StackConfig, check_ports
from infra.stack.services import ServiceSpec, stack_environment, stack_services
from infra.stack.state import (
    ServiceRecord,
    StackState,
    check_existing,
    lakefs_credentials,
    make_private_dir,
    ray_token,
    read_state,
    remove,
    stack_lock,
    webhook_secret,
    write_env_file,
    write_state,
)

StackEvent = Literal["starting", "ready", "skipped", "failed", "stopping", "stopped"]
OnEvent = Callable[[StackEvent, str, str], None]


def _ignore_event(event: StackEvent, service: str, detail: str) -> None:
    """Default progress callback: report nothing."""


def start_stack(
    config: StackConfig,
    *,
    start_serving: Callable[[Mapping[str, str]], bool] | None = None,
    on_event: OnEvent = _ignore_event,
) -> StackState:
    """Start every service, waiting for each wave to be healthy; record the stack in ``state.json``.

    Args:
        config: What to start and where.
        start_serving: Called with the stack environment once wave 1 is healthy; ``True`` starts the
            serving app (a champion exists). ``None`` or ``False``: serving waits for a champion.
        on_event: Progress callback ``(event, service, detail)``.

    Returns:
        The recorded state.

    Raises:
        StackRunningError: a stack recorded in ``config.stack_dir`` still (partly) runs; when it fully
            runs, its state is on the exception as ``state``.
        PortInUseError: a port is taken; nothing was started.
        ServiceStartError: a service failed; what was started is stopped again, the state removed.
    """
    config = config.resolved()
    stack_dir = config.stack_dir
    make_private_dir(stack_dir)
    with stack_lock(stack_dir):
        existing = check_existing(stack_dir)
        if existing is not None:
            raise StackRunningError(f"the lockgate stack in {stack_dir} is already running", state=existing)
        check_ports(config)
        make_private_dir(stack_dir / "logs")
        env = stack_environment(
            config,
            lakefs_credentials=lakefs_credentials(stack_dir / "lakefs"),
            webhook_secret=config.webhook_secret or webhook_secret(stack_dir),
            ray_token_path=ray_token(stack_dir),
        )
        env_file = write_env_file(stack_dir, env)
        state = StackState(
            stack_dir=str(stack_dir),
            host=config.host,
            ports=asdict(config.ports),
            env_file=str(env_file),
            started_at=time.time(),
            services=[],
        )
        specs = stack_services(config)
        try:
            for wave in sorted({spec.wave for spec in specs}):
                wave_specs = [spec for spec in specs if spec.wave == wave]
                if wave == 2:
                    wave_specs = _serving_decision(wave_specs, env, start_serving, state, on_event)
                started = [_spawn(spec, env, config, state, on_event) for spec in wave_specs]
                _wait_ready(started, wave_specs, config.ready_timeout_s, on_event)
        except BaseException:
            stop_services(state.services, on_event=on_event)
            remove(stack_dir / STATE_FILE)
            raise
        return state


def _serving_decision(
    specs: list[ServiceSpec],
    env: Mapping[str, str],
    start_serving: Callable[[Mapping[str, str]], bool] | None,
    state: StackState,
    on_event: OnEvent,
) -> list[ServiceSpec]:
    if start_serving is not None and start_serving(env):
        return specs
    state.skipped[SERVING] = WAITING_FOR_CHAMPION
    on_event("skipped", SERVING, WAITING_FOR_CHAMPION)
    return [spec for spec in specs if spec.name != SERVING]


def _spawn(
    spec: ServiceSpec, env: Mapping[str, str], config: StackConfig, state: StackState, on_event: OnEvent
) -> ServiceRecord:
    log_path = config.stack_dir / "logs" / f"{spec.name}.log"
    on_event("starting", spec.name, spec.title)
    # Explicit: the caller's environment plus the stack's, which wins.
    extra = {**env, **(config.ray_env if spec.name == "ray" else {})}
    process = spawn(
        spec.command, log_path=log_path, env=child_environment(extra), cwd=spec.cwd or config.stack_dir
    )
    record = ServiceRecord(
        name=spec.name,
        title=spec.title,
        pid=process.pid,
        create_time=psutil.Process(process.pid).create_time(),
        command=list(spec.command),
        log=str(log_path),
        wave=spec.wave,
        url=spec.url,
        health=[asdict(probe) for probe in spec.health],
        grace_s=spec.grace_s,
        started_at=time.time(),
    )
    state.services.append(record)
    write_state(Path(state.stack_dir), state)  # at once: a crash of `up` itself leaves something to stop
    return record


def _wait_ready(
    records: list[ServiceRecord], specs: list[ServiceSpec], timeout_s: float, on_event: OnEvent
) -> None:
    waiting = {record.name: (record, spec) for record, spec in zip(records, specs, strict=True)}
    deadline = time.monotonic() + timeout_s
    while waiting:
        for name, (record, spec) in list(waiting.items()):
            log_path = Path(record.log)
            process = record.process()
            if process is None or process.status() == psutil.STATUS_ZOMBIE:
                code = exit_code(record.pid)
                code = "" if code is None else f" with code {code}"
                on_event("failed", name, "exited")
                raise ServiceStartError(
                    f"{spec.title} ({name}) exited during start-up{code}; its log is {log_path}",
                    service=name,
                    log_path=log_path,
                    log_tail=log_tail(log_path),
                )
            if all(probe.passes(log_path=log_path, started_at=record.started_at) for probe in spec.ready):
                del waiting[name]
                on_event("ready", name, f"{time.time() - record.started_at:.1f} s")
        if waiting and time.monotonic() > deadline:
            name, (record, spec) = next(iter(waiting.items()))
            on_event("failed", name, "timeout")
            raise ServiceStartError(
                f"{spec.title} ({name}) not healthy after {timeout_s:g} s; its log is {record.log}",
                service=name,
                log_path=Path(record.log),
                log_tail=log_tail(Path(record.log)),
            )
        if waiting:
            time.sleep(0.25)


@dataclass(frozen=True)
class StopReport:
    """What ``stop_stack`` did: services stopped (name -> how), and whether state was stale."""

    stack_dir: Path
    stopped: dict[str, str]
    was_running: bool
    had_state: bool


def stop_stack(stack_dir: Path, *, on_event: OnEvent = _ignore_event) -> StopReport:
    """Stop every recorded service (later waves first), then remove ``state.json`` and ``stack.env``."""
    stack_dir = Path(stack_dir).expanduser().resolve()
    if not stack_dir.is_dir():
        return StopReport(stack_dir, {}, was_running=False, had_state=False)
    with stack_lock(stack_dir):
        state = read_state(stack_dir)
        if state is None:
            return StopReport(stack_dir, {}, was_running=False, had_state=False)
        was_running = any(record.process() is not None for record in state.services)
        stopped = stop_services(state.services, on_event=on_event)
        remove(stack_dir / ENV_FILE)
        remove(stack_dir / STATE_FILE)
        return StopReport(stack_dir, stopped, was_running=was_running, had_state=True)


def stop_services(records: list[ServiceRecord], *, on_event: OnEvent = _ignore_event) -> dict[str, str]:
    """Stop ``records`` wave by wave, last wave first; return name -> ``terminated``/``killed``/``gone``."""
    grace = {record.name: record.grace_s for record in records}
    titles = {record.name: record.title for record in records}
    outcome: dict[str, str] = {}
    for wave in sorted({record.wave for record in records}, reverse=True):
        outcome.update(
            stop_together(
                {record.name: record.process() for record in records if record.wave == wave},
                grace_s=grace,
                on_stopping=lambda name: on_event("stopping", name, titles[name]),
                on_stopped=lambda name, how: on_event(
                    "stopped", name, _STOP_DETAIL[how].format(grace=grace[name])
                ),
            )
        )
    return outcome


_STOP_DETAIL = {"terminated": "terminated", "killed": "killed after its {grace:g} s grace period"}
