"""The frontend: read an ONNX model and hand on plain records of its graph and shapes.

The only code that imports onnx and onnxruntime. It reads a model without its weights
(:mod:`.load`), checks every external-data reference before anything reads a weight
(:mod:`.external`), binds symbolic dims (:mod:`.symbols`, :mod:`.shapes`), reads the
nodes (:mod:`.nodes`), infers shapes (:mod:`.inference`, in a child process on a large
graph: :func:`onnx_flow.processes.child.beside`), folds shape arithmetic
(:mod:`.fold`), falls back on onnxruntime for what stays open (:mod:`.fallback`,
:mod:`.runtime`), and gives the measures the weights and runs they ask for
(:mod:`.stored`).
"""
