"""The tenant gateway: what a per-consumer WorkflowApi reads, writes and publishes, scoped to its one consumer.

The store cannot scope a credential to one consumer's documents, so a WorkflowApi deployed for one consumer holds
no server credential at all; it holds a token (schemas.tenant_gateway) and asks this service, which holds them.
"""
