"""Every process the tool starts, in one place: no other module forks, spawns or sets
resource limits (``tests/test_structure.py`` checks it).

Up to four generations: the command; a preloaded :mod:`.server` (corpus runs,
``--jobs``, a Dask worker's thread); a :mod:`.child` per model, bounded in time and
memory; and the model's own children (shape inference beside the pipeline, an
onnxruntime run within its limits). Each child dies with its parent. They talk in
one format, :mod:`.protocol`. This package knows nothing of ONNX or of the audit: a
stage or the command line hands it the functions to run.
"""
