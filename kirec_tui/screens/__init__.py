"""The workbench's screens: Runs (home), Train, Items, Prompts, and their modals."""
