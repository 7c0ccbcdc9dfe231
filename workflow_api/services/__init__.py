"""What the WorkflowApi does for a consumer, apart from HTTP: routes parse, authorise, call one of these, render."""
