"""Training robust networks: GloRo (globally-robust networks, Leino et al. 2021), torch optional."""
