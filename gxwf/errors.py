class UserError(Exception):
    """Bad input from the person at the keyboard: printed as one line, exit status 2."""
