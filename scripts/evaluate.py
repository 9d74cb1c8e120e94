"""python scripts/evaluate.py ckpt=outputs/<run>/checkpoints/last.ckpt input=DIR [style=...]
python scripts/evaluate.py method=optimize input=DIR steps=300 snapshots=[100]

Scores a stylizer on a folder of photos under a fixed reference (gan_stylizer.evaluation): style
and content loss, sliced Wasserstein distance to the painting, SSIM and edge agreement with the
photo, seconds and peak memory per image. equal_quality_steps=N (method=gan) also measures how
long the per-image optimization needs to reach the same total loss. The same as
`gan-stylizer evaluate`: see gan_stylizer.commands.evaluate.
"""

from gan_stylizer.commands.evaluate import main

if __name__ == "__main__":
    main()
