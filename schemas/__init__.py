"""The domain: store documents, their state machines, and API models. No I/O here."""
