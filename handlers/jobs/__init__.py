"""Job lifecycle: submit runs to a compute backend, track their facts, reconcile with the backend."""
