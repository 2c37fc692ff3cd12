"""The flow: the network of tensor capacities, reduced, solved, and cut.

The only code of the audit that imports networkx, and only when it is needed (a core
that series-parallel reduction leaves, a model with attention): :mod:`.network` wires
the network, :mod:`.reduce` shrinks it, :mod:`.cut` solves it and reads both extreme
minimum cuts, :mod:`.paths` tells which tensors every path to the outputs goes through.
"""
