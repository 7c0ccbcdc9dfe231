"""The ops dashboard: live tail of the bus, transfer timelines, overview and delivery health, over HTTP."""
