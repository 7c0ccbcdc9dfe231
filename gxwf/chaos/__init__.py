"""`gxwf chaos`: the whole system on loopback under seeded faults, checked from the outside afterwards."""
