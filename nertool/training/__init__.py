"""Training: the loop, its state, distributed runs, evaluation, ensembles."""
