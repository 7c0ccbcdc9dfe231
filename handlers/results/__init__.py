"""Result publishing: a finished run's outputs and log in the object store, with a manifest."""
