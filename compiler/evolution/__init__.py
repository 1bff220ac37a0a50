"""The evolutionary half of AssembleNet's architecture search, on the IR only (no TensorFlow).

`mutations`: the mutation operators (connection-learning-guided, split, merge, dilation,
filters, level), each recorded with its parameters, every child checked like `asnc check`;
`selection`: aging (regularized) evolution; `budget`: the static FLOPs and
parameter limits; `pareto`: the non-dominated individuals; `journal`: the run's record;
`random_net`: random networks within bounds (`--random-init`).
The trials themselves (training) are the backend's (`backends/tensorflow/trial.py`); the
loop that runs them on Ray is `asn/cli/evolve_loop.py`.
"""
