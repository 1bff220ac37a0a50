"""asnc: a compiler for AssembleNet-family video networks."""
