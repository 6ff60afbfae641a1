"""kirec's headless engine: data, models, training, evaluation, the runs store and the pipeline.

Never imports textual (a test checks it in a subprocess): both front ends sit on top of this package.
"""

__version__ = "0.1.0"
