"""The ``group_presence`` activity: a group's latest presence, from the visibility store.

One listing filtered by the ``DevEnvGroup`` search attribute (running environments of
that group only, whatever the fleet's size), each row read from its memo: no query to
any workflow. The owner is checked on the memo row (``devenv.models.group``).
"""

from __future__ import annotations

from temporalio.client import Client

from devenv.models.config import validate_name
from devenv.models.group import MAX_PEERS, GroupInput, GroupPresence, presence_of
from devenv.models.state import WORKFLOW_TYPE
from devenv.models.status import MEMO_KEY, EnvironmentStatus


def group_query(group: str) -> str:
    """The listing of a group's running environments; a name that is not one is refused
    (it is quoted into the query)."""
    validate_name(group)
    return f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running" AND DevEnvGroup="{group}"'


async def group_presence(client: Client, asker: GroupInput) -> GroupPresence:
    """The latest presence among ``asker``'s running peers (not counting itself)."""
    rows: list[EnvironmentStatus] = []
    async for execution in client.list_workflows(group_query(asker.group), limit=MAX_PEERS):
        try:
            memo = await execution.memo_value(MEMO_KEY, None, type_hint=dict)
            rows.append(EnvironmentStatus.model_validate(memo))
        except Exception:  # a row that does not decode is no presence
            continue
    return presence_of(rows, asker)
