"""Remake the bundled sample images in ``revdeconv/data/samples/``.

Ten RGB images of 180x250 (the paper's size), cut from public-domain and CC0
photographs that scikit-image ships (``skimage/data/``; each photograph's
licence is in the docstring of its loader in ``skimage.data``). Each sample
is a crop with the 250:180 aspect ratio, resized with Lanczos filtering and
saved as 8-bit PNG. Sources and licences are listed in
``revdeconv/data/samples/SOURCES.md``.

    pip install scikit-image pillow
    python tools/make_samples.py
"""

import os

from PIL import Image
from skimage.data import data_dir

SIZE = (250, 180)      # Pillow's (width, height)
OUT = os.path.join(os.path.dirname(__file__), "..", "revdeconv", "data", "samples")

# name: (file in skimage/data, crop box (left, top, right, bottom))
SAMPLES = {
    "01_astronaut_face": ("astronaut.png", (120, 20, 398, 220)),
    "02_astronaut_suit": ("astronaut.png", (0, 262, 347, 512)),
    "03_chelsea": ("chelsea.png", (17, 0, 434, 300)),
    "04_coffee": ("coffee.png", (22, 0, 578, 400)),
    "05_coffee_detail": ("coffee.png", (300, 100, 578, 300)),
    "06_hubble_deep_field": ("hubble_deep_field.jpg", (250, 300, 750, 660)),
    "07_immunohistochemistry": ("ihc.png", (0, 100, 500, 460)),
    "08_retina": ("retina.jpg", (205, 400, 1205, 1120)),
    "09_rocket": ("rocket.jpg", (23, 0, 616, 427)),
    "10_rocket_detail": ("rocket.jpg", (200, 50, 417, 206)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (source, box) in SAMPLES.items():
        with Image.open(os.path.join(data_dir, source)) as photo:
            sample = photo.convert("RGB").crop(box).resize(SIZE, Image.Resampling.LANCZOS)
        sample.save(os.path.join(OUT, f"{name}.png"), optimize=True)
        print(f"{name}.png  <- {source} {box}")


if __name__ == "__main__":
    main()
