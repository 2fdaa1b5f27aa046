"""The node agent: a Temporal worker on `navarch-node-<node_id>` running GPU-local activities.

Never imports `navarch.workflows`.
"""
