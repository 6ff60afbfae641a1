"""The use cases both front ends call, and the only part of the engine they import besides the config, the
events and the option names (engine.config, engine.events, engine.choices): an import-linter contract in
pyproject.toml keeps it so.

- `experiments`: run a configuration, resume an interrupted run, check a multi-process launch;
- `runs`: open the runs store, export runs, load a trained run, a user's recommendations;
- `datasets`: the known datasets, where each is, their statistics, downloading one, loading one;
- `items`: an item's view (text, attributes per prompt version, popularity) and its nearest neighbours;
- `extraction`: LLM attribute extraction through the cache (shipped answers first), and its backends;
- `embedding`: a dataset's semantic item table, exported for another machine;
- `prompts`: prompt files, checking an edited prompt against a dataset, its preview, saving a version;
- `bench`: a bench's cells and its results table.

Each module imports the heavy parts (torch, SQLAlchemy, llama.cpp) inside its functions, so `kirec --help`
and a bad flag stay instant.
"""
