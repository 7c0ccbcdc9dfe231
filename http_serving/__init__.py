"""What every HTTP entry point shares: its listening socket, its uvicorn server's life, problem+json bodies."""
