"""kirec's front ends: the Typer CLI (`kirec`) and the Textual app (`kirec-tui`), both over `engine`."""
