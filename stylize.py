"""python stylize.py input=photo.jpg [ckpt=<zoo name> | outputs/<run>/last.ckpt | model.onnx]
       [strength=0.3 | strength=0,0.5,1 [grid=true]] [output=...]

Without ckpt=, the per-image optimization (Gatys et al.): style=<name> picks the painting.
The same as `gan-stylizer stylize`: see gan_stylizer.commands.stylize.
"""

from gan_stylizer.commands.stylize import main

if __name__ == "__main__":
    main()
