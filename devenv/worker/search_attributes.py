"""devenv's search attributes on the embedded server's existing database.

``temporal server start-dev --search-attribute`` registers them only in a database it
creates: one kept from an older devenv (``DEVENV_HOME``'s SQLite file) lacks those added
since (``DevEnvGroup``), and a group's listing or start would be refused. So
``devenv server`` adds whichever are missing, once the server answers.
"""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from devenv.settings import SEARCH_ATTRIBUTES

log = logging.getLogger(__name__)

KINDS = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


async def add_missing(client: Client, namespace: str) -> list[str]:
    """Register devenv's search attributes the server lacks; the names added. A server
    that refuses is logged (its listing by group says what to do), never fatal."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            name: KINDS[kind]
            for name, kind in SEARCH_ATTRIBUTES.items()
            if name not in listed.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
            log.info("registered search attributes %s", ", ".join(sorted(missing)))
        return sorted(missing)
    except RPCError as err:
        log.warning("could not register devenv's search attributes: %s", err.message)
        return []
