"""Whose machines: the installation id every instance is tagged with.

Two Navarch installations can share one cloud account; each sweeps only the machines that
carry its own id. The id is `server.cluster_id` from the config when set, else derived from
the Temporal namespace (its name and the server's own id for it), so two installations on
different servers or namespaces never share one, and every worker of one installation
derives the same.
"""

from __future__ import annotations

import re

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client


def cluster_id_for(namespace: str, namespace_id: str) -> str:
    """`<namespace>-<8 hex of its id>`: readable, and a valid GCE label value."""
    name = re.sub(r"[^a-z0-9-]+", "-", namespace.lower()).strip("-")[:30] or "ns"
    return f"{name}-{namespace_id.replace('-', '').lower()[:8]}"


async def namespace_cluster_id(client: Client) -> str:
    """The default installation id of the namespace `client` talks to."""
    answer = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace))
    return cluster_id_for(client.namespace, answer.namespace_info.id)
