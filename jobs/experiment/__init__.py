"""The experiment file: its schema, the arguments each entry point gets from it, the record of a run."""
