"""The judge: from flows and graph to the report's verdicts and findings.

:mod:`.verdict` (references, ratios, cuts, bypassed layers), :mod:`.declared`
(bottlenecks the user declares), :mod:`.findings` (bottlenecks known by name),
:mod:`.profile` (what pictures draw) and :mod:`.compare` (two versions of a model).
"""
