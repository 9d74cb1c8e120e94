"""python train.py style=starry_night [data=folder data.root=DIR] [loss.alpha=...] [-m sweeps]

The same as `gan-stylizer train`: see gan_stylizer.commands.train.
"""

from gan_stylizer.commands.train import main

if __name__ == "__main__":
    main()
