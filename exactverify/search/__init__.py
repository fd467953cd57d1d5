"""The search: the verifier driver, input and ReLU splitting, attacks, region walks, bound
tightening by LP/MILP, and parallel pieces. Decides one property on one network."""
