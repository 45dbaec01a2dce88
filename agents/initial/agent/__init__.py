"""The seed coding agent of dgm: a tool-use loop with a bash tool and a file editor."""
