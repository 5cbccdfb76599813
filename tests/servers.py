"""The real Temporal dev server as tests use it: devenv's search attributes registered,
continue-as-new suggested early (60 events) so long-history paths are cheap to reach."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devenv.worker import binaries
from devenv.worker.devserver import search_attribute_args


async def start_test_dev_server() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(binaries.temporal_cli()),
        ui=False,
        dev_server_extra_args=[
            *search_attribute_args(),
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
        ],
    )
