"""python scripts/export.py ckpt=outputs/<run>/checkpoints/last.ckpt [format=onnx|pt2] [output=...]

Writes the trained generator (its EMA weights) as an ONNX model (opset 18) or a torch.export
program, with dynamic batch, height and width, and beside it <model file>.json with the pixel
convention. `python stylize.py ckpt=<model file> input=...` runs it. The same as
`gan-stylizer export`: see gan_stylizer.commands.export.
"""

from gan_stylizer.commands.export import main

if __name__ == "__main__":
    main()
