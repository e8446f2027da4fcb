"""Device side of host tools, in the firmware dialect: scripts the MicroPython unix port runs
(crypto and link benchmarks, the power-loss campaign). They import only `ami` and each other."""
