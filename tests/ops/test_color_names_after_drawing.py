"""Colour names stay right after other code in the process resolved named colours through Pillow."""

from __future__ import annotations


def test_colour_names_after_pillow_cached_named_colours() -> None:
    from PIL import ImageColor

    from pixlearn.ops import color

    # Pillow's getrgb("red") stores (255, 0, 0) in ImageColor.colormap["red"] (its cache): drawing code does this
    ImageColor.getrgb("red")
    ImageColor.getrgb("white")
    assert isinstance(ImageColor.colormap["red"], tuple)
    color._name_table.cache_clear()
    try:
        assert color.color_name((250, 5, 5)) == "red"
        assert color.css_color_name((255, 255, 255)) == "white"
    finally:
        color._name_table.cache_clear()
