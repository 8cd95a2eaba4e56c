"""``python -m reinforge`` is the ``reinforge`` command; so ``torchrun --nproc-per-node 2 -m reinforge rft
CONFIG.yaml`` runs a trainer data parallel on 2 processes (``train/distributed.py``)."""

from reinforge.cli import main

if __name__ == "__main__":
    main()
