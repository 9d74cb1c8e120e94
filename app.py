"""python app.py [models=outputs/] [host=127.0.0.1] [port=7860]

The local web page: upload photos, pick a painting, slide the strength, download PNGs.
The same as `gan-stylizer serve`: see gan_stylizer.commands.serve.
"""

from gan_stylizer.commands.serve import main

if __name__ == "__main__":
    main()
