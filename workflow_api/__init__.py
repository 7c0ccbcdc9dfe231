"""The WorkflowApi: what a consumer uses to list assets, upload inputs, start and follow runs, and fetch results.

It reads the state store and the object store and publishes commands (`wf.run.requested`, `wf.run.stop.requested`);
the handlers change the state.
"""
