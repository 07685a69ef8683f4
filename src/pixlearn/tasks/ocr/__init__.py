"""Text in images (OCR): PP-OCR text detection, 180° direction classification and recognition on onnxruntime.

* :func:`~pixlearn.tasks.ocr.read.read_text` -- the text lines of one RGB image, in reading order, as
  :class:`~pixlearn.tasks.ocr.lines.TextLine` (quadrilateral, text, confidence, line index).
* :class:`~pixlearn.tasks.ocr.engine.OcrEngine` -- the loaded models (the ones bundled in ``rapidocr_onnxruntime``, or
  PP-OCR ONNX files of your own), cached per option set and safe to share between threads.
* :func:`~pixlearn.tasks.ocr.files.read_text_files` -- files, folders and globs, one row per image (never dying on
  one bad file), with drawn images on request (:func:`~pixlearn.tasks.ocr.draw.draw_text_lines`).

The package registers itself as the ready-made task ``ocr`` (:func:`pixlearn.tasks.registry.tool`), the way the CLI and
the service reach it. Importing it loads neither rapidocr, onnxruntime nor OpenCV: the models load on first use.
"""

from pixlearn.tasks.registry import ToolSpec, register_tool

register_tool(ToolSpec(
    name="ocr",
    summary="Read the text in images (PP-OCR on onnxruntime): quadrilaterals, text and confidence in reading order.",
    package="pixlearn.tasks.ocr",
    entry={
        "read": "pixlearn.tasks.ocr.read:read_text",
        "read_oriented": "pixlearn.tasks.ocr.read:read_text_oriented",
        "rotations": "pixlearn.tasks.ocr.read:ROTATIONS",
        "max_side_range": "pixlearn.tasks.ocr.read:MAX_SIDE_RANGE",
        "engine": "pixlearn.tasks.ocr.engine:get_engine",
        "files": "pixlearn.tasks.ocr.files:read_text_files",
        "table": "pixlearn.tasks.ocr.files:text_table",
        "columns": "pixlearn.tasks.ocr.files:TABLE_COLUMNS",
        "draw": "pixlearn.tasks.ocr.draw:draw_text_lines",
        "options": "pixlearn.tasks.ocr.read:check_read_options",
    },
))
