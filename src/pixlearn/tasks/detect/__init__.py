"""Object detection and instance segmentation on the engine (importing it loads no torch).

``detections`` (:class:`~pixlearn.tasks.detect.detections.Detections`, the :class:`~pixlearn.tasks.detect.detections.Detector`
protocol) is what every producer and consumer of boxes speaks. ``config`` (:class:`~pixlearn.tasks.detect.config.DetectConfig`),
``data`` (splits, box statistics, repeat factors, tiles, the letterboxed dataset), ``model`` (torchvision's FCOS, RetinaNet,
SSDlite, Faster / Mask R-CNN on a timm or torchvision backbone with an FPN; a run as a Detector), ``module``
(:class:`~pixlearn.tasks.detect.module.DetectTask`: summed loss, val mAP), ``recipe`` (the defaults and the budget plan),
``train`` (:func:`~pixlearn.tasks.detect.train.train_detector`), ``metrics`` / ``evaluate`` / ``report`` (COCO mAP as
pycocotools computes it), ``predict`` / ``tiles`` / ``yolox`` / ``draw`` (inference).
"""

from pixlearn.tasks.registry import TaskSpec, register

#: This task's registry entry: how ``pixlearn train/predict/eval`` and the service reach it.
SPEC = register(TaskSpec(
    name="detect",
    summary="Object detection and instance segmentation: a COCO / YOLO / VOC folder in, a detector run folder out (COCO mAP).",
    package=__name__,
    entry={
        "train": "pixlearn.tasks.detect.train:train_detector",
        "config": "pixlearn.tasks.detect.config:DetectConfig",
        "load": "pixlearn.tasks.detect.predict:load_detector",
        "predict": "pixlearn.tasks.detect.predict:predict_detect_files",
        "evaluate": "pixlearn.tasks.detect.evaluate:evaluate_detect_run",
        "is_run": "pixlearn.tasks.detect.predict:is_detect_run",
        "read_dataset": "pixlearn.tasks.detect.data:read_detect_dataset",
        "load_run": "pixlearn.tasks.detect.model:load_run_detector",
        "coco_detector": "pixlearn.tasks.detect.yolox:load_yolox",
        "find_coco_detector": "pixlearn.tasks.detect.yolox:find_yolox",
        "tiled": "pixlearn.tasks.detect.tiles:TiledDetector",
    },
    serves=("detect",),
    predicts="boxes (xyxy pixels), scores and class names per image (COCO results JSON with --format json, CSV rows), drawn "
             "images with -o DIR, instance masks for Mask R-CNN runs; --score and --iou filter, --tile N tiles large images.",
))
