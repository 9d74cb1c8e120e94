"""python scripts/models.py: the model zoo, one line per pretrained stylizer (the same as
`gan-stylizer models`; see gan_stylizer.zoo)."""

from gan_stylizer.commands.models import main

if __name__ == "__main__":
    main()
