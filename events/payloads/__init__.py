"""One pydantic payload model per event of the flow, grouped by the part of the flow that publishes it."""
