"""A stand-in EDC connector: management API, callback recorder, and provisioning requests of each generation."""
