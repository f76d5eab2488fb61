"""The model layer: pure descriptions of containers (no I/O, no event loop, no processes).

States and the transition table, restart policies, names, signals, the
input rules and the frozen ``ContainerSpec``. Every layer above may import
it; it imports only ``lifecycle._errors`` (and ``_stringid``).
"""

from __future__ import annotations

from lifecycle.model._checks import (
    DEFAULT_STOP_TIMEOUT,
    WAIT_CONDITIONS,
    WaitCondition,
    check_at_least,
    check_command,
    check_cwd,
    check_env,
    check_interval,
    check_limits,
    check_network,
    check_path,
    check_since,
    check_timeout,
    check_user,
    check_wait_condition,
    check_whole_number,
    is_number,
)
from lifecycle.model._health import (
    HEALTH_ON_FAILURE,
    MAX_LOG_ENTRIES,
    MAX_OUTPUT_BYTES,
    TIMED_OUT_EXIT_CODE,
    Health,
    Healthcheck,
    HealthOnFailure,
    HealthStatus,
    HealthTracker,
    Probe,
    check_health_on_failure,
    cut_output,
)
from lifecycle.model._identity import NAME_PATTERN, generate_name, validate_name
from lifecycle.model._restart import RestartPolicy
from lifecycle.model._signals import SignalLike, parse_signal
from lifecycle.model._spec import (
    DEFAULT_LOG_BYTES,
    DEFAULT_PATH,
    DEFAULT_RUNTIME,
    DEFAULT_STOP_SIGNAL,
    ContainerSpec,
)
from lifecycle.model._states import (
    HINTS,
    MACHINE,
    NO_OPS,
    PROCESS_TRIGGERS,
    TRANSITIONS,
    State,
    StateModel,
    Transition,
    Trigger,
    allowed_triggers,
    as_trigger,
)

__all__ = [
    "DEFAULT_LOG_BYTES",
    "DEFAULT_PATH",
    "DEFAULT_RUNTIME",
    "DEFAULT_STOP_SIGNAL",
    "DEFAULT_STOP_TIMEOUT",
    "HEALTH_ON_FAILURE",
    "HINTS",
    "MACHINE",
    "MAX_LOG_ENTRIES",
    "MAX_OUTPUT_BYTES",
    "NAME_PATTERN",
    "NO_OPS",
    "PROCESS_TRIGGERS",
    "TIMED_OUT_EXIT_CODE",
    "TRANSITIONS",
    "WAIT_CONDITIONS",
    "ContainerSpec",
    "Health",
    "HealthOnFailure",
    "HealthStatus",
    "HealthTracker",
    "Healthcheck",
    "Probe",
    "RestartPolicy",
    "SignalLike",
    "State",
    "StateModel",
    "Transition",
    "Trigger",
    "WaitCondition",
    "allowed_triggers",
    "as_trigger",
    "check_at_least",
    "check_command",
    "check_cwd",
    "check_env",
    "check_health_on_failure",
    "check_interval",
    "check_limits",
    "check_network",
    "check_path",
    "check_since",
    "check_timeout",
    "check_user",
    "check_wait_condition",
    "check_whole_number",
    "cut_output",
    "generate_name",
    "is_number",
    "parse_signal",
    "validate_name",
]
