"""A bounded fuzz of every route from the OpenAPI document (schemathesis):
whatever it generates, as the admin, the answer is no 5xx, a status the
document declares, and JSON where JSON is declared."""

from __future__ import annotations

import dataclasses

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from sqlalchemy import Engine

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from tests.api.conftest import Tokens

# ~100 operations x this many cases each, in-process: about a minute on 2 cores
EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def test_every_route_answers_as_declared(
    settings: ApiSettings, engine: Engine, tokens: Tokens
) -> None:
    # agents' long-polls answer at once: the fuzz asks for long waits
    app = create_app(dataclasses.replace(settings, task_poll_max_seconds=0.2), engine)
    schema = schemathesis.openapi.from_asgi("/pcifleet/v1/openapi.json", app)
    headers = {"X-Auth-Token": tokens.admin}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 90
    failures = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # every operation's findings, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert failures == [], "\n\n".join(failures)
