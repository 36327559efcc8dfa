"""The one-machine stack behind ``lockgate up`` / ``down`` / ``status``, as background processes.

Services, each a subprocess in its own process group (``infra.processes``), logging to
``<stack dir>/logs/<service>.log``:

==================  ==========================================================================
``prefect``         ``prefect server start`` (SQLite under ``<stack dir>/prefect``), UI included
``lakefs``          the embedded lakeFS-API server (data under ``<stack dir>/lakefs``)
``dask-scheduler``  ``dask scheduler`` (its HTTP endpoint answers health checks)
``dask-workers``    ``dask worker --nworkers N --nthreads 1`` (one DDP rank per worker)
``ray``             ``ray start --head --block`` (the Serve cluster)
``webhook-relay``   ``lockgate relay`` (signed webhooks -> Prefect events)
``serving``         ``lockgate serve`` on the Ray cluster, only when a champion model exists
``deployments``     ``python -m flows.deployments``: every lockgate deployment, served by Prefect
==================  ==========================================================================

Every service gets the environment of all the others (``PREFECT_API_URL``, ``LOCKGATE_LAKEFS_*``,
``LOCKGATE_DASK_SCHEDULER_ADDRESS``, ``LOCKGATE_SERVING_*``, ``LOCKGATE_WEBHOOK_SECRET``); all of it is
known before anything starts, so independent services start together (``wave`` 1) and the ones that
need the others healthy start after them (``wave`` 2).

The stack directory holds ``state.json`` (PIDs, process start times, ports, URLs), ``stack.env`` (to
``source``), the generated secrets (owner-only) and the logs. ``stop_stack`` sends SIGTERM to every
process group (and any descendant that left it), waits a grace period, then SIGKILLs what is left.
Ray is stopped the same way rather than with ``ray stop``, which would stop every Ray on the machine.
Ray binds the machine's address whatever it is told (it resolves loopback to it), so the stack runs it
with token authentication and a token of its own (``ray-auth-token``, owner-only).

======================  ==================================================================
``infra.stack.config``  ports, ``StackConfig``, port checks
``...services``         the services' command lines, environment and probes
``...state``            ``state.json``, ``stack.env``, secrets, ``stack_status``
``...lifecycle``        ``start_stack`` / ``stop_stack``
======================  ==================================================================

This package knows nothing of ``flows``/``tasks``/``serving`` beyond the command lines it runs; the CLI
(``flows/cli/stack.py``) injects the one decision that needs the registry (is there a champion?).
"""

from __future__ import annotations

from infra.errors import PortInUseError, ServiceStartError, StackError, StackRunningError
from infra.stack.config import (
    DEFAULT_STACK_DIR,
    PORT_LABELS,
    SERVING,
    WAITING_FOR_CHAMPION,
    StackConfig,
    StackPorts,
    check_ports,
)
from infra.stack.lifecycle import OnEvent, StackEvent, StopReport, start_stack, stop_services, stop_stack
from infra.stack.services import Probe, ServiceSpec, stack_environment, stack_services
from infra.stack.state import (
    ServiceRecord,
    ServiceStatus,
    StackState,
    StackStatus,
    read_state,
    stack_status,
    webhook_secret,
    webhook_secret_source,
    write_env_file,
)

__all__ = [
    "DEFAULT_STACK_DIR",
    "PORT_LABELS",
    "SERVING",
    "WAITING_FOR_CHAMPION",
    "OnEvent",
    "PortInUseError",
    "Probe",
    "ServiceRecord",
    "ServiceSpec",
    "ServiceStartError",
    "ServiceStatus",
    "StackConfig",
    "StackError",
    "StackEvent",
    "StackPorts",
    "StackRunningError",
    "StackState",
    "StackStatus",
    "StopReport",
    "check_ports",
    "read_state",
    "stack_environment",
    "stack_services",
    "stack_status",
    "start_stack",
    "stop_services",
    "stop_stack",
    "webhook_secret",
    "webhook_secret_source",
    "write_env_file",
]
